#!/usr/bin/env bash
# The test suite (CPU). Creates or reuses .venv first. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$ROOT"
exec "$PY" -m pytest -q tests "$@"
