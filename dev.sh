#!/usr/bin/env bash
# Development entry point; both commands are idempotent and do all the setup on a fresh machine.
#   ./dev.sh demo   run the variation example workflow headless (real models if present, else tiny ones)
#   ./dev.sh test   run the test suite offline
#   ./dev.sh bench  run the benchmarks (prints ratios)
#   ./dev.sh test-floor   the suite on the oldest supported libraries (requirements-floor.txt, venv .venv-floor)
#   ./dev.sh test-latest  the suite on the newest releases (torch stays 2.13.0; venv .venv-latest; before a release)
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

# A second stack in its own venv ($1) from a file of library pins ($2); the other lines of
# requirements-test.txt (test tools) are added, so a new test dependency reaches every stack.
# $3 = "upgrade": resolve the newest releases again on every run (test-latest).
setup_stack() {
  local venv="$1" pins="$2" mode="${3:-}" py="$1/bin/python" stamp="$1/.llm-assist-setup" names
  if [ -z "$mode" ] && [ -x "$py" ] && [ -f "$stamp" ] && [ "$stamp" -nt "$pins" ] \
     && [ "$stamp" -nt requirements-test.txt ] && [ "$stamp" -nt pyproject.toml ]; then
    return
  fi
  [ -x "$py" ] || python3 -m venv "$venv"
  names="$(sed -nE 's/^([A-Za-z0-9_.-]+).*/\1/p' "$pins" | tr 'A-Z_' 'a-z-' | paste -sd'|')"
  sed -E 's/[[:space:]]*#.*//' requirements-test.txt | awk -v skip="^(${names})$" '
    { n = $1; sub(/[][=<>!~;].*/, "", n); k = tolower(n); gsub("_", "-", k) }
    n != "" && k !~ skip' > "$venv/requirements-tools.txt"
  "$py" -m pip install -q --disable-pip-version-check ${mode:+-U} -r "$pins" -r "$venv/requirements-tools.txt"
  # the pack with its other runtime dependencies, held to the pins above
  "$py" -m pip install -q --disable-pip-version-check -e . -c "$pins"
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
  test-floor)
    setup_stack .venv-floor requirements-floor.txt
    shift
    .venv-floor/bin/python -c 'from llm_assist.core.hf_loading import FLOORS, installed_version as v
bad = [f"{p} {v(p)} (floor {f})" for p, f in FLOORS.items() if v(p) != f]
assert not bad, "not the floor versions: " + ", ".join(bad)'
    exec .venv-floor/bin/python -m pytest -q "$@"
    ;;
  test-latest)
    mkdir -p .venv-latest
    # the floor file's libraries, unpinned (torch stays the 2.13.0 CPU wheel)
    sed -nE 's/^([A-Za-z0-9_.-]+)==.*/\1/p' requirements-floor.txt | sed -E 's/^torch$/torch==2.13.0/' > .venv-latest/requirements-latest.txt
    setup_stack .venv-latest .venv-latest/requirements-latest.txt upgrade
    shift
    .venv-latest/bin/python -c 'from llm_assist.core.hf_loading import FLOORS, installed_version as v
print("latest stack:", ", ".join(f"{p} {v(p)}" for p in ["torch", *FLOORS]))'
    exec .venv-latest/bin/python -m pytest -q "$@"
    ;;
  bench)
    setup
    shift
    for script in bench/*.py; do echo "== $script"; "$PY" "$script" "$@"; done
    ;;
  *)
    echo "usage: ./dev.sh demo | test | test-floor | test-latest | bench" >&2
    exit 2
    ;;
esac
