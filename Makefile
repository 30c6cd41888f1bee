# The two commands of the quick start, and a few helpers. Everything installs into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
VARIANT ?= cpu

.PHONY: demo test setup system-packages test-fast lint clean image test-container container-tools

## make demo: install everything, then prepare data, train, optimize and serve `support-triage`
demo: setup system-packages
	$(VENV)/bin/tuneloop demo

## make test: install what the tests need, then run the whole suite
test: setup system-packages
	$(PY) -m pytest

## make test-fast: unit tests only (no real model, no servers)
test-fast: setup
	$(PY) -m pytest -m "not integration and not slow"

## make image: build the server image with podman (localhost/tuneloop:cpu; VARIANT=cuda for GPUs),
## on a local Debian base made with debootstrap the first time
image: container-tools
	python3 deploy/build_image.py --variant $(VARIANT)

## make test-container: build the image, test it running with no network, and the compose stack
test-container: setup container-tools
	$(PY) -m pytest -m container -s

setup:
	bash scripts/setup.sh

system-packages:
	bash scripts/install-system-packages.sh

container-tools:
	bash scripts/install-container-tools.sh

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf tuneloop-demo build dist *.egg-info .pytest_cache
