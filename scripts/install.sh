#!/usr/bin/env bash
# Create .venv (if missing) and install LADIS into it. Idempotent and fast when nothing
# changed: a stamp records the hash of the requirement files.
#   scripts/install.sh          runtime dependencies (what `make demo` and the Dockerfile use)
#   scripts/install.sh --test   plus test dependencies, Debian's Chromium (browser tests) and
#                               Prometheus (it scrapes the fleet's metrics), and the OpenID
#                               Connect provider the sign-in tests start (npm, tests/oidc)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${LADIS_VENV:-.venv}
PYTHON=${PYTHON:-python3}
WITH_TESTS=0
[[ "${1:-}" == "--test" ]] && WITH_TESTS=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
  || die "Python >= 3.11 is needed ($("$PYTHON" --version) found)"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi

install_requirements() {  # $1: stamp name, rest: requirement files
  local stamp="$VENV/.ladis-$1" files=("${@:2}") want
  want=$(cat "${files[@]}" pyproject.toml | sha256sum | cut -c1-16)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  log "installing ${files[*]} into $VENV (the first time takes several minutes: torch is large)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  local args=()
  for f in "${files[@]}"; do args+=(-r "$f"); done
  "$VENV/bin/python" -m pip install --quiet "${args[@]}"
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
}

install_requirements runtime requirements.txt

if [[ $WITH_TESTS == 1 ]]; then
  install_requirements test requirements.txt requirements-test.txt
  # Debian packages the tests drive: Chromium (browser tests), Prometheus (scrapes metrics)
  missing=()
  command -v chromium >/dev/null || [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  command -v prometheus >/dev/null || missing+=(prometheus)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing Debian's ${missing[*]} for the tests"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "could not install ${missing[*]} with apt-get; install them by hand (apt-get install ${missing[*]})"
  fi
fi
if [[ $WITH_TESTS == 1 ]]; then
  # node-oidc-provider, pinned by tests/oidc/package-lock.json, into tests/oidc/node_modules
  command -v npm >/dev/null || die "npm not found; install Node.js 20 or later (the sign-in tests run an OpenID Connect provider on it)"
  lock_hash=$(sha256sum tests/oidc/package-lock.json | cut -c1-16)
  if [[ ! -f tests/oidc/node_modules/.ladis-lock || "$(cat tests/oidc/node_modules/.ladis-lock)" != "$lock_hash" ]]; then
    log "installing the test OpenID Connect provider (npm ci in tests/oidc)"
    npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error >/dev/null \
      || die "npm ci in tests/oidc failed"
    echo "$lock_hash" > tests/oidc/node_modules/.ladis-lock
  fi
fi
log "environment ready ($("$VENV/bin/python" -c 'import ladis_core; print("LADIS", ladis_core.__version__)'))"
