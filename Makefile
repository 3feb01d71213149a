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
	$(PIP) install --quiet -e '.[dev,torch,audio,postgres]'
	touch $@

# Synthesizes a small speech corpus (espeak-ng, offline), trains the CTC ASR recipe on it
# (about a minute on 2 cores), then lists and shows the run.
demo: $(VENV)/.deps-demo
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) run recipes/asr_ctc
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) runs --project asr-ctc --sort test/wer --limit 10
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) show $$(TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) runs \
	  --project asr-ctc --limit 1 --json | $(PY) -c "import json, sys; print(json.load(sys.stdin)[0]['id'])")

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
	rm -rf $(VENV) .venv-bench build dist src/*.egg-info .pytest_cache .ruff_cache
