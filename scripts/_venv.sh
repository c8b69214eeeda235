#!/usr/bin/env bash
# Sourced by the other scripts: creates or reuses the project virtualenv and installs the project into
# it (editable, with test extras) whenever setup.py or the requirements change. Sets $PY.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${REBALANCE_HCA_VENV:-$ROOT/.venv}
BASE_PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$BASE_PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is required")'
  echo "[venv] creating $VENV"
  "$BASE_PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.rebalance_hca_installed"
wanted=$(cat "$ROOT/setup.py" "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "[venv] installing rebalance_hca and its requirements into $VENV"
  "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
  echo "$wanted" > "$stamp"
fi
export PY ROOT
