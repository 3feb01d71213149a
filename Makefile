# `make demo` and `make test` each create/update .venv, install what they need, and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
TYMPAN := $(VENV)/bin/tympan
DEMO_STORE ?= .tympan

.PHONY: demo test lint bench torch clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch==2.13.0 is the CPU wheel on these machines; a bare "torch" requirement would make
# pip resolve the newest release with several GB of CUDA packages. Installed first, so the
# `torch` extra below finds it satisfied.
torch: | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet torch==2.13.0

$(VENV)/.deps-demo: pyproject.toml | $(PY)
	$(MAKE) --no-print-directory torch
	$(PIP) install --quiet -e '.[torch,audio]'
	touch $@

$(VENV)/.deps-test: pyproject.toml | $(PY)
	$(MAKE) --no-print-directory torch
	$(PIP) install --quiet -e '.[dev,torch,audio,postgres,ray]'
	touch $@

# Runs the reduced ASR ablation study (encoder x front end x LR schedule, 3 seeds: 15 trials
# of the CTC recipe on a synthesized corpus, about 5 minutes on 2 cores), writes its report,
# and lists the runs.
demo: $(VENV)/.deps-demo
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ablate studies/asr_components_quick.yaml --workers 2
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) report asr_components_quick --out reports/asr_components_quick
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) runs --project asr-ctc --sort test/wer --limit 5
	@echo "report: reports/asr_components_quick/report.html (and report.md)"
	@echo "inspect: $(TYMPAN) study asr_components_quick; $(TYMPAN) show RUN_ID"

test: $(VENV)/.deps-test
	$(VENV)/bin/ruff check src tests benchmarks recipes
	$(PY) -m pytest

lint: $(VENV)/.deps-test
	$(VENV)/bin/ruff check src tests benchmarks recipes

# Peers (MLflow, W&B, Aim) live in their own venv so they never touch the test venv.
bench:
	bash benchmarks/setup-bench.sh
	.venv-bench/bin/python benchmarks/logging.py

clean:
	rm -rf $(VENV) .venv-bench reports build dist src/*.egg-info .pytest_cache .ruff_cache
