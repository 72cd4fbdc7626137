#!/usr/bin/env bash
# Container entry point.
#   dashboard [ARGS]     the Streamlit dashboard on port LADIS_PORT (default 8501) (default):
#                        on every interface when sign-in is configured (an [auth] section in
#                        LADIS_SECRETS_FILE or /opt/ladis/.streamlit/secrets.toml), otherwise
#                        on 127.0.0.1 only, unless LADIS_ALLOW_ANONYMOUS=1 (then every page
#                        says access is unauthenticated); see python -m ladis_core dashboard -h
#   monitor ARGS...      one monitoring job (python -m ladis_core monitor ARGS)
#   processing           the SageMaker Processing contract (also when called as ladis-processing)
#   anything else        run as a command
set -euo pipefail
cd "${LADIS_HOME:-/opt/ladis}"
if [[ "$(basename "$0")" == "ladis-processing" ]]; then
  exec python -m ladis_core.processing "$@"
fi
case "${1:-dashboard}" in
  dashboard)
    exec python -m ladis_core dashboard "${@:2}" ;;
  monitor|report|demo|serve|s3|cache)
    exec python -m ladis_core "$@" ;;
  processing)
    shift; exec python -m ladis_core.processing "$@" ;;
  *)
    exec "$@" ;;
esac
