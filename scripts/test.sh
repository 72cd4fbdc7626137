#!/usr/bin/env bash
# `make test`: set up (runtime + test dependencies + Chromium) and run the whole suite:
# lint, unit, integration (real SeaweedFS, real trials) and app (AppTest + real browser).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
PY=.venv/bin/python
echo "[test] ruff"
$PY -m ruff check .
$PY -m ruff format --check .
echo "[test] pytest"
mkdir -p test-artifacts
exec $PY -m pytest "$@"
