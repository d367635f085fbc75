# Two commands on a fresh machine: `make demo` (the main job on the bundled default) and `make test`.
.PHONY: setup demo test test-fast test-all bench model-zoo clean

VENV := .venv
ZOO := $(VENV)/bin/zoo
PY := $(VENV)/bin/python

setup:
	@scripts/setup.sh

demo: setup
	$(ZOO) list
	$(ZOO) info mobilenetv3_act

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
