# `make demo` and `make test` each create/update .venv, install what they need, and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
TYMPAN := $(VENV)/bin/tympan
DEMO_STORE ?= .tympan

.PHONY: demo test lint bench torch clean browser

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
	$(PIP) install --quiet -e '.[torch,audio,ui]'
	touch $@

$(VENV)/.deps-test: pyproject.toml constraints.txt | $(PY)
	$(MAKE) --no-print-directory torch
	$(PIP) install --quiet -c constraints.txt -e '.[dev,torch,audio,postgres,ray,ui,s3,lightning,transformers]'
	touch $@

# Runs the reduced ASR ablation study (encoder x front end x LR schedule, 3 seeds: 15 trials
# of the CTC recipe on a synthesized corpus, about 5 minutes on 2 cores), writes its report,
# lists the runs, then probes the best baseline model: a reference profile of its layers on
# clean speech, and an anomaly report for a few noisy, clipped and sped-up inputs (and, for
# contrast, for clean speech of other speakers). Last it registers that model as asr-digits
# version 1, makes it @champion with the study as evidence, and writes its model card.
demo: $(VENV)/.deps-demo
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ablate studies/asr_components_quick.yaml --workers 2
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) report asr_components_quick --out reports/asr_components_quick
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) runs --project asr-ctc --sort test/wer --limit 5
	@echo "report: reports/asr_components_quick/report.html (and report.md)"
	@RUN=$$(TYMPAN_STORE=$(DEMO_STORE) $(PY) -c "$$BEST_BASELINE") && set -x && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe fit $$RUN --data split:valid,test \
	    --calibration 0.7 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift white:5 --limit 8 \
	    --alpha 0.05 --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift clip:0.02 --limit 8 \
	    --alpha 0.05 --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift speed:1.5 --limit 8 \
	    --alpha 0.05 --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --data split:train --limit 40 \
	    --alpha 0.05 --show 0
	@RUN=$$(TYMPAN_STORE=$(DEMO_STORE) $(PY) -c "$$BEST_BASELINE") && set -x && \
	  { TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model show asr-digits/1 >/dev/null 2>&1 || \
	    TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model register $$RUN --name asr-digits \
	      --description "best conv/log-mel/cosine baseline of asr_components_quick"; } && \
	  { TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model show asr-digits@champion >/dev/null 2>&1 || \
	    TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model alias asr-digits@champion 1 --admin \
	      --reason "lowest test WER of the study's baseline arm" \
	      --evidence study:asr_components_quick; } && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model card models:/asr-digits@champion \
	    --out reports/model-cards/asr-digits-v1.md
	@echo "inspect: $(TYMPAN) study asr_components_quick; $(TYMPAN) show RUN_ID"
	@echo "browse:  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ui   (the web UI, on http://127.0.0.1:8787)"

# The finished baseline run (conv, log-mel, cosine) with the lowest test WER.
export BEST_BASELINE = import tympan; runs = [r for r in tympan.find_runs(project="asr-ctc", \
  status="finished") if {"conv", "logmel"} <= set(r.tags) and r.config.get("schedule") == \
  "cosine"]; print(min(runs, key=lambda r: r.summary["test/wer"].last).id)

test: $(VENV)/.deps-test browser
	$(VENV)/bin/ruff check src tests benchmarks recipes
	$(PY) -m pytest

# The UI's browser tests drive Debian's chromium through chromedriver. Installed here when
# missing and apt is usable; otherwise those tests skip with a reason (and fail under CI=true).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
	      >/dev/null; } || \
	  echo "chromium/chromedriver not installed: the browser tests will be skipped"

lint: $(VENV)/.deps-test
	$(VENV)/bin/ruff check src tests benchmarks recipes

# Peers (MLflow, W&B, Aim) live in their own venv so they never touch the test venv.
bench:
	bash benchmarks/setup-bench.sh
	.venv-bench/bin/python benchmarks/logging.py

clean:
	rm -rf $(VENV) .venv-bench reports build dist src/*.egg-info .pytest_cache .ruff_cache
