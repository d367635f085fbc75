#!/usr/bin/env bash
# Build the two environments, idempotently:
#   .venv       CPython 3.10: paddlepaddle 2.6.2 (CPU), paddleslim, paddlelite 2.13rc0 (arm), the zoo (editable)
#   .venv-lite  CPython 3.7 + paddlelite 2.12: the x86 Lite converter and runtime, used through a subprocess;
#               opencv-python 4.2.0.32, the reference build of the cv2 backend's resize
#   .venv-paddle3  CPython 3.10 + paddlepaddle 3.3.1: Paddle Inference 3.x as users install it today, reached
#               only through a subprocess (deploy/paddle3_worker.py)
# A stamp holding the hash of what was installed skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp_of() { cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16; }
want=$(stamp_of)

if [ "$(cat .venv/.zoo-stamp 2>/dev/null)" != "$want" ]; then
  py=$(scripts/find-python 3.10)
  echo "setup: main environment (.venv) with $py"
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[cpu,test]"
  echo "$want" > .venv/.zoo-stamp
fi

if [ "$(cat .venv-lite/.zoo-stamp 2>/dev/null)" != "$want" ]; then
  py37=$(scripts/find-python 3.7)
  echo "setup: x86 Lite toolchain (.venv-lite) with $py37"
  [ -x .venv-lite/bin/python ] || "$py37" -m venv .venv-lite
  # opencv-python 4.2.0.32: the build paddlepaddle 1.8.5 pinned, the reference of the cv2 backend's resize tests
  .venv-lite/bin/python -m pip install -q "paddlelite==2.12" "numpy<1.22" "opencv-python==4.2.0.32"
  echo "$want" > .venv-lite/.zoo-stamp
fi
if [ "$(cat .venv-paddle3/.zoo-stamp 2>/dev/null)" != "$want" ]; then
  py=$(scripts/find-python 3.10)
  echo "setup: Paddle 3.x consumer (.venv-paddle3) with $py"
  [ -x .venv-paddle3/bin/python ] || "$py" -m venv .venv-paddle3
  .venv-paddle3/bin/python -m pip install -q "paddlepaddle==3.3.1"
  echo "$want" > .venv-paddle3/.zoo-stamp
fi
echo "setup: ready (.venv, .venv-lite, .venv-paddle3)"
