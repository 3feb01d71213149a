#!/usr/bin/env bash
# Create or update the benchmark virtualenv .venv-bench: tympan (editable, with the
# PostgreSQL driver) plus the peers MLflow, W&B and Aim, and torch==2.13.0 (CPU) for
# mlflow.pytorch in benchmarks/registry.py; never any other torch.
#
#   bash benchmarks/setup-bench.sh            # from the repository root (or anywhere)
#   .venv-bench/bin/python benchmarks/log_throughput.py
#
# Idempotent: a package that already imports is not reinstalled. If Aim ever stops
# co-installing with tympan's dependencies, it goes into a third venv .venv-aim, which
# benchmarks/log_throughput.py uses for Aim's worker when it exists.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv-bench"
AIM_VENV="$ROOT/.venv-aim"
PY_BASE="${PYTHON:-python3}"

# Any package that asks for torch makes resolution fail instead of pulling GBs of CUDA.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo 'torch<0' >"$CONSTRAINTS"

make_venv() {  # make_venv DIR: create DIR as a venv unless it already is one
  if [[ ! -x "$1/bin/python" ]]; then
    echo "creating virtualenv $1"
    "$PY_BASE" -m venv "$1"
    "$1/bin/python" -m pip install --quiet --upgrade pip
  fi
  echo '*' >"$1/.gitignore"  # keep the venv out of git (as Python >= 3.13's venv does)
}

has() {  # has PY MODULE: does MODULE import in interpreter PY?
  "$1" -c "import $2" >/dev/null 2>&1
}

make_venv "$VENV"
PY="$VENV/bin/python"

# tympan itself, editable, so the benchmark always measures the working tree; reinstalled
# when pyproject.toml (its dependencies) changed since the last install.
STAMP="$VENV/.tympan-pyproject.sha256"
want_stamp="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null)" == "$want_stamp" ]] \
    && "$PY" -c "import tympan, psycopg, sys; sys.exit('$ROOT/src' not in tympan.__file__)" \
    >/dev/null 2>&1; then
  echo "tympan (editable, [postgres]): already installed"
else
  echo "installing: tympan (editable, [postgres])"
  "$PY" -m pip install -c "$CONSTRAINTS" -e "$ROOT[postgres]"
  echo "$want_stamp" >"$STAMP"
fi

# Peers: mlflow, wandb, aim (module name = package name for all three).
want=()
for pkg in mlflow wandb aim; do
  if has "$PY" "$pkg"; then
    echo "$pkg: already installed ($("$PY" -m pip show "$pkg" 2>/dev/null | sed -n 's/^Version: //p'))"
  elif [[ "$pkg" == aim && -x "$AIM_VENV/bin/python" ]] && has "$AIM_VENV/bin/python" aim; then
    echo "aim: already installed in $AIM_VENV"
  else
    want+=("$pkg")
  fi
done

if ((${#want[@]})); then
  echo "installing: ${want[*]}"
  if ! "$PY" -m pip install -c "$CONSTRAINTS" "${want[@]}"; then
    # Fallback: everything but aim here, aim alone in its own venv.
    rest=()
    for pkg in "${want[@]}"; do [[ "$pkg" == aim ]] || rest+=("$pkg"); done
    if ((${#rest[@]})); then
      echo "retrying without aim: ${rest[*]}"
      "$PY" -m pip install -c "$CONSTRAINTS" "${rest[@]}"
    fi
    if [[ " ${want[*]} " == *" aim "* ]]; then
      echo "installing: aim into $AIM_VENV (did not co-install with tympan's dependencies)"
      make_venv "$AIM_VENV"
      "$AIM_VENV/bin/python" -m pip install -c "$CONSTRAINTS" aim
    fi
  fi
fi

# benchmarks/registry.py compares with mlflow.pytorch, which needs torch: the CPU wheel the
# Makefile pins (torch==2.13.0), asked for by exact version so no resolver picks a CUDA build.
if has "$PY" torch; then
  echo "torch: already installed ($("$PY" -c 'import torch; print(torch.__version__)'))"
else
  echo "installing: torch==2.13.0 (CPU) for mlflow.pytorch"
  "$PY" -m pip install --quiet torch==2.13.0
fi

# Belt and braces: nothing but that pinned CPU build of torch, and none in Aim's venv.
if [[ "$("$PY" -c 'import torch; print(torch.__version__)')" != 2.13.0* ]]; then
  echo "error: $VENV holds a torch other than 2.13.0; remove that venv" >&2
  exit 1
fi
if [[ -x "$AIM_VENV/bin/python" ]] && "$AIM_VENV/bin/python" -m pip show torch >/dev/null 2>&1; then
  echo "error: torch is installed in $AIM_VENV; remove that venv" >&2
  exit 1
fi
echo "ready: $PY benchmarks/log_throughput.py"
