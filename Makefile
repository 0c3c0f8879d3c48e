# The two commands a fresh machine needs: `make demo` and `make test`.
# Everything is installed from PyPI into .venv; nothing has to be exported by hand.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test workers: the suite is sized for 2 cores.
JOBS ?= 2

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/heraldry demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m heraldry.sim.bench

clean:
	rm -rf $(VENV) build *.egg-info
