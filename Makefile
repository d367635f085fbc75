# Two commands on a fresh machine: `make demo` (the main job on the bundled default) and `make test`.
.PHONY: setup demo test test-fast test-all bench model-zoo clean

VENV := .venv
ZOO := $(VENV)/bin/zoo
PY := $(VENV)/bin/python

setup:
	@scripts/setup.sh

# The main job on the bundled defaults: reproduce the digits PTQ classifier and the digits YOLOv3 PTQ
# detector (offline: bundled FP32 models and data), check each against its published numbers, then
# export them for Paddle Lite (INT8 arm .nb, and the FP32 x86 .nb run by Lite's own runtime against
# Paddle Inference: outputs for the classifier, matched boxes for the detector).
DEMO_OUT ?= demo-out
demo: setup
	$(ZOO) reproduce digits_mobilenetv1_ptq --out $(DEMO_OUT)/digits_mobilenetv1_ptq
	$(ZOO) export $(DEMO_OUT)/digits_mobilenetv1_ptq --target lite --arch arm --out $(DEMO_OUT)/lite-arm
	$(ZOO) export $(DEMO_OUT)/digits_mobilenetv1_ptq/fp32 --target lite --arch x86 --out $(DEMO_OUT)/lite-x86
	$(ZOO) reproduce digits_yolov3_mobilenetv1_ptq --out $(DEMO_OUT)/digits_yolov3_mobilenetv1_ptq
	$(ZOO) export $(DEMO_OUT)/digits_yolov3_mobilenetv1_ptq --target lite --arch arm --out $(DEMO_OUT)/lite-arm-det
	$(ZOO) export $(DEMO_OUT)/digits_yolov3_mobilenetv1_ptq/fp32 --target lite --arch x86 --out $(DEMO_OUT)/lite-x86-det

# The README's test command; .ci/run calls it. Runs every tier except the benchmarks.
test: setup
	$(PY) -m pytest -m "not bench" $(PYTEST_ARGS)

# Library and CLI tests only (no end-to-end reproductions).
test-fast: setup
	$(PY) -m pytest -m "not slow and not bench" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest $(PYTEST_ARGS)

model-zoo: setup
	$(ZOO) docs model-zoo --write

clean:
	rm -rf build dist *.egg-info .pytest_cache
