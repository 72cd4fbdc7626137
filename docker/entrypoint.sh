#!/usr/bin/env bash
# Container entry point.
#   dashboard            the Streamlit dashboard on 0.0.0.0:8501 (default)
#   monitor ARGS...      one monitoring job (python -m ladis_core monitor ARGS)
#   processing           the SageMaker Processing contract (also when called as ladis-processing)
#   anything else        run as a command
set -euo pipefail
cd /opt/ladis
if [[ "$(basename "$0")" == "ladis-processing" ]]; then
  exec python -m ladis_core.processing "$@"
fi
case "${1:-dashboard}" in
  dashboard)
    exec streamlit run app/streamlit_app.py --server.address 0.0.0.0 --server.port 8501 \
      --server.headless true --browser.gatherUsageStats false ;;
  monitor|report|demo|serve|s3)
    exec python -m ladis_core "$@" ;;
  processing)
    shift; exec python -m ladis_core.processing "$@" ;;
  *)
    exec "$@" ;;
esac
