#!/usr/bin/env bash
# `make demo`: set up, start the local S3 server, build the demo world if it is missing,
# and open the dashboard on http://127.0.0.1:8501.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
PY=.venv/bin/python

if [[ -z "${AWS_ENDPOINT_URL_S3:-}" && -z "${LADIS_S3_URI:-}" ]]; then
  # No S3 configured: use the project's local SeaweedFS server (data in .data/s3/).
  $PY -m ladis_core s3 start
  eval "$($PY -m ladis_core s3 env)"
fi
export LADIS_S3_URI=${LADIS_S3_URI:-s3://ladis/}

# Builds only what is missing; a complete world is detected and left alone.
$PY -m ladis_core demo --world "$LADIS_S3_URI"

echo "[demo] dashboard on http://127.0.0.1:${LADIS_PORT:-8501} (Ctrl-C to stop; the S3 server keeps running: python -m ladis_core s3 stop)"
exec .venv/bin/streamlit run app/streamlit_app.py \
  --server.address 127.0.0.1 --server.port "${LADIS_PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false --client.toolbarMode minimal
