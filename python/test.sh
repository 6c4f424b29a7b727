#!/usr/bin/env bash
# Builds carve's Python wheel and tests it in a fresh virtual environment: creates a venv (Debian's
# python3-venv is installed with apt when the venv module is missing), installs maturin, pytest, numpy
# and onnx from PyPI, builds the wheel with the README's command (into $CARGO_TARGET_DIR, default
# target/), pip-installs it and runs python/tests with pytest against ../shared/models (or
# $CARVE_SHARED).
#
# Environment: PYTHON (default python3), CARVE_PY_PROFILE (cargo profile of the wheel, default
# release), CARVE_PY_KEEP=1 keeps the venv and wheel directory (printed), extra pytest arguments are
# passed through: `bash python/test.sh -k threads -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-python3}
PROFILE=${CARVE_PY_PROFILE:-release}
export CARVE_SHARED=${CARVE_SHARED:-$REPO/../shared}

fail() {
  echo "python/test.sh: error: $*" >&2
  exit 1
}

command -v "$PY" >/dev/null || fail "'$PY' not found (set PYTHON to a Python 3.9+ interpreter)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 9))' || fail "$PY is older than Python 3.9"
[ -d "$CARVE_SHARED/models" ] || fail "the shared models are missing: $CARVE_SHARED/models (set CARVE_SHARED)"

WORK=$(mktemp -d)
if [ "${CARVE_PY_KEEP:-0}" = 1 ]; then
  echo "python/test.sh: keeping $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi
VENV="$WORK/venv"

echo "== python: fresh virtual environment ($("$PY" --version 2>&1))"
if ! "$PY" -m venv "$VENV" 2>"$WORK/venv.err"; then
  cat "$WORK/venv.err" >&2
  # Debian's python3 ships the venv module (and ensurepip) in a separate package.
  command -v apt-get >/dev/null || fail "$PY cannot create a virtual environment and apt-get is missing"
  [ "$(id -u)" = 0 ] || fail "$PY cannot create a virtual environment: install python3-venv (as root)"
  echo "python/test.sh: installing Debian's python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || fail "$PY cannot create a virtual environment even with python3-venv"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check "maturin>=1.8,<2" pytest numpy onnx \
  || fail "pip could not install maturin, pytest, numpy and onnx"

echo "== python: build the wheel (maturin, profile $PROFILE)"
WHEELS="$WORK/wheels"
if [ "$PROFILE" = release ]; then
  PROFILE_ARGS=(--release)
else
  PROFILE_ARGS=(--profile "$PROFILE")
fi
START=$(date +%s)
# The documented command (README "Python"): maturin build --release -m python/Cargo.toml -o DIR
"$VENV/bin/maturin" build "${PROFILE_ARGS[@]}" -m python/Cargo.toml -o "$WHEELS" -i "$VPY" \
  || fail "maturin could not build the wheel"
echo "python/test.sh: wheel built in $(($(date +%s) - START)) s: $(cd "$WHEELS" && ls ./*.whl)"

echo "== python: install the wheel"
"$VPY" -m pip install -q --disable-pip-version-check "$WHEELS"/*.whl || fail "pip could not install the wheel"
# Import from outside the repository so that python/carve (the sources) cannot shadow the install.
(cd "$WORK" && "$VPY" -c 'import carve, sys; print("carve", carve.__version__, "from", carve.__file__)')

echo "== python: pytest"
cd "$WORK"
"$VPY" -m pytest "$REPO/python/tests" -q -p no:cacheprovider "$@"
