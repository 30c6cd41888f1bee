# The two commands of the quick start, and a few helpers. Everything installs into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup system-packages test-fast lint clean

## make demo: install everything, then prepare data, train, optimize and serve `support-triage`
demo: setup system-packages
	$(VENV)/bin/tuneloop demo

## make test: install what the tests need, then run the whole suite
test: setup system-packages
	$(PY) -m pytest

## make test-fast: unit tests only (no real model, no servers)
test-fast: setup
	$(PY) -m pytest -m "not integration and not slow"

setup:
	bash scripts/setup.sh

system-packages:
	bash scripts/install-system-packages.sh

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf tuneloop-demo build dist *.egg-info .pytest_cache
