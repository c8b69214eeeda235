#!/usr/bin/env bash
# The test suite (CPU). Creates or reuses .venv first. --fast (first argument) skips the tests marked slow
# (those that train a model or run a tool end to end). Other arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
if [ "${1:-}" = "--fast" ]; then
  shift
  exec "$PY" -m pytest -q tests -m "not slow" "$@"
fi
exec "$PY" -m pytest -q tests "$@"
