#!/usr/bin/env bash
# Development entry point; both commands are idempotent and do all the setup on a fresh machine.
#   ./dev.sh demo   run the variation example workflow headless (real models if present, else tiny ones)
#   ./dev.sh test   run the test suite offline
#   ./dev.sh bench  run the benchmarks (prints ratios)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${LLM_ASSIST_VENV:-.venv}"
PY="$VENV/bin/python"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export HF_HUB_DISABLE_PROGRESS_BARS=1
export TOKENIZERS_PARALLELISM=false

setup() {
  local stamp="$VENV/.llm-assist-setup"
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$stamp" -nt requirements-test.txt ] && [ "$stamp" -nt pyproject.toml ]; then
    return
  fi
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check -r requirements-test.txt
  "$PY" -m pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
}

case "${1:-}" in
  demo)
    setup
    shift
    exec "$PY" -m llm_assist demo "$@"
    ;;
  test)
    setup
    shift
    exec "$PY" -m pytest -q "$@"
    ;;
  bench)
    setup
    shift
    for script in bench/*.py; do echo "== $script"; "$PY" "$script" "$@"; done
    ;;
  *)
    echo "usage: ./dev.sh demo | test | bench" >&2
    exit 2
    ;;
esac
