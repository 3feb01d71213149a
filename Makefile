# `make demo` and `make test` each create/update .venv, install what they need, and run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
TYMPAN := $(VENV)/bin/tympan
DEMO_STORE ?= .tympan
# pytest-xdist workers for `make test`: the suite waits on servers, subprocesses and
# PostgreSQL much of the time, so two workers finish it sooner even on two cores.
TEST_WORKERS ?= 2

.PHONY: demo demo-tts demo-loop test lint bench torch clean browser mlflow-venv

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
	$(PIP) install --quiet -c constraints.txt -e '.[torch,audio,ui,serve]'
	touch $@

$(VENV)/.deps-test: pyproject.toml constraints.txt | $(PY)
	$(MAKE) --no-print-directory torch
	$(PIP) install --quiet -c constraints.txt -e '.[dev,torch,audio,postgres,ray,ui,serve,serve-ray,s3,lightning,transformers,tensorboard]'
	touch $@

# Runs the reduced ASR ablation study (encoder x front end x LR schedule, 3 seeds: 15 trials
# of the CTC recipe on a synthesized corpus, about 5 minutes on 2 cores), writes its report,
# lists the runs, then probes the best baseline model: a reference profile of its layers and
# output fitted on its training speech and calibrated on the 120 held-out clean utterances (so
# p-values reach 1/121 and alpha 0.01 is reachable), and an anomaly report for a few noisy,
# clipped, sped-up and reverberant inputs (and, for contrast, for its clean training speech).
# Last it registers that model as asr-digits version 1, makes it @champion with the study as
# evidence, and writes its model card. It ends serving the champion for a few seconds
# (tympan serve, guard in warn mode) and sending it a clean and a noisy clip: both answers and
# the guard's verdicts are printed.
demo: $(VENV)/.deps-demo
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ablate studies/asr_components_quick.yaml --workers 2
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) report asr_components_quick --out reports/asr_components_quick
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) runs --project asr-ctc --sort test/wer --limit 5
	@echo "report: reports/asr_components_quick/report.html (and report.md)"
	@RUN=$$(TYMPAN_STORE=$(DEMO_STORE) $(PY) -c "$$BEST_BASELINE") && set -x && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe fit $$RUN --data split:train \
	    --calibrate-on split:valid,test && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift white:5 --limit 8 \
	    --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift clip:0.02 --limit 8 \
	    --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift speed:1.5 --limit 8 \
	    --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --shift reverb:0.8 --limit 8 \
	    --show 3 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) probe score $$RUN --data split:train --limit 40 \
	    --show 0
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
	TYMPAN_STORE=$(DEMO_STORE) $(PY) -m recipes.asr_ctc.serve_demo models:/asr-digits@champion
	@echo "inspect: $(TYMPAN) study asr_components_quick; $(TYMPAN) show RUN_ID"
	@echo "browse:  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ui   (the web UI, on http://127.0.0.1:8787)"

# The finished baseline run (conv, log-mel, cosine) with the lowest test WER.
export BEST_BASELINE = import tympan; runs = [r for r in tympan.find_runs(project="asr-ctc", \
  status="finished") if {"conv", "logmel"} <= set(r.tags) and r.config.get("schedule") == \
  "cosine"]; print(min(runs, key=lambda r: r.summary["test/wer"].last).id)

# The TTS story end to end (about 10 minutes on 2 cores): an ASR judge (the asr_ctc recipe on
# a shorter schedule, registered as asr-digits@champion, unless `make demo` made one), the
# single-speaker corpus, then the quick TTS ablation (text encoder, decoder, guided attention,
# one at a time, 3 seeds: 15 trainings), its report and the findings wiki (a TTS page beside
# the ASR one). Listen to the arms in the UI: the study page links its blind preference test.
demo-tts: $(VENV)/.deps-demo
	@TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model show asr-digits@champion >/dev/null 2>&1 || { \
	  set -x && TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) run recipes/asr_ctc epochs=12 && \
	  TYMPAN_STORE=$(DEMO_STORE) $(PY) -c "$$TTS_JUDGE"; }
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) corpus synth --out .tympan/corpora/digits-v3-u160-s0 \
	  --voices 3 --per-speaker 160
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ablate studies/tts_components_quick.yaml --workers 2
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) report tts_components_quick --out reports/tts_components_quick
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) runs --project tts --sort test/cer --limit 5
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) findings export --wiki reports/wiki
	@echo "report: reports/tts_components_quick/report.html; wiki: reports/wiki/project-tts.md"
	@echo "listen:  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ui   (study tts_components_quick -> listening test)"

# Registers the newest finished asr_ctc run as asr-digits and makes it @champion: the TTS judge.
export TTS_JUDGE = import tympan, tympan.models as m; run = max(tympan.find_runs( \
  project="asr-ctc", status="finished"), key=lambda r: r.started_at); v = m.register(run.id, \
  "asr-digits", description="the ASR judge of make demo-tts"); m.set_alias( \
  "asr-digits@champion", v.version, reason="judge of the TTS demo", admin=True); \
  print(f"asr-digits@champion: version {v.version}, run {run.id}")

# The data loop (docs/quantify.md, docs/loop.md), 3.5 minutes on 2 idle cores (measured, with
# the editable install; docs/loop.md): a quantification answer from the quick ASR
# learning-curve study (4 data sizes x 2 seeds: 8 trainings of 8 epochs on nested subsets of
# 240 utterances), then one continuous-training iteration: a new batch of 120 utterances from
# 4 new voices arrives in .tympan/loop/data, two seeds of the challenger train at once on the
# champion's data plus that batch, both models are judged on the study corpus's 60 test
# utterances and @champion moves only if the gate passes. The champion is that study's
# full-data trial of seed 0, unless `make demo` made one.
demo-loop: $(VENV)/.deps-demo
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ablate studies/asr_learning_curve_quick.yaml --workers 2
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) quantify asr_learning_curve_quick --target test/wer=0.1
	@TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) model show asr-digits@champion >/dev/null 2>&1 || \
	  TYMPAN_STORE=$(DEMO_STORE) $(PY) -c "$$LOOP_CHAMPION"
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) corpus synth --out .tympan/loop/data/batch-1 \
	  --voices 4 --per-speaker 30 --seed 1
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) loop run pipelines/asr_digits_loop.yaml
	TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) loop status pipelines/asr_digits_loop.yaml
	@echo "browse:  TYMPAN_STORE=$(DEMO_STORE) $(TYMPAN) ui   (Models -> asr-digits -> Continuous training)"

# Registers the quick learning-curve study's full-data trial of seed 0 as asr-digits @champion.
export LOOP_CHAMPION = import tympan, tympan.models as m; run = max((r for r in \
  tympan.find_runs(project="asr-ctc", status="finished") if r.study_id and \
  r.config.get("train_fraction") == 1 and r.config.get("seed") == 0), key=lambda r: \
  r.started_at); v = m.register(run.id, "asr-digits", description="full-data trial of \
  asr_learning_curve_quick, seed 0"); m.set_alias("asr-digits@champion", v.version, reason= \
  "the champion of make demo-loop", admin=True); print(f"asr-digits@champion: version \
  {v.version}, run {run.id}")

# The stock MLflow client (mlflow-skinny, pinned to the release the tests were written
# against; torch-free) with tympan, in a venv of its own so it
# never touches the test venv: the MLflow endpoint's test runs a client script with it, and
# the mlflow importer's test writes an MLflow store and runs `tympan import mlflow` there.
MLFLOW_VENV := .venv-mlflow
$(MLFLOW_VENV)/.deps: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
	  -c constraints.txt -e '.[mlflow]' 'mlflow-skinny==3.18.0'
	touch $@

mlflow-venv: $(MLFLOW_VENV)/.deps

test: $(VENV)/.deps-test browser mlflow-venv
	$(VENV)/bin/ruff check src tests benchmarks recipes
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

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
	.venv-bench/bin/python benchmarks/log_throughput.py

clean:
	rm -rf $(VENV) .venv-bench .venv-mlflow reports build dist src/*.egg-info .pytest_cache .ruff_cache
