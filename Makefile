# Two commands for a newcomer:  `make demo` (set up + run the main job) and `make test` (set up + run the tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: setup system-deps demo test lint clean

setup: $(VENV)/.installed

# torch goes first, pinned, so nothing pulls a multi-GB CUDA build in its place.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian packages: the Fashion-MNIST files (the demo downloads them instead where apt is unavailable),
# Chromium for the browser tests and PostgreSQL for the catalog database tests. Installed only when missing,
# and only where apt-get can run as root.
DEBIAN_PACKAGES := dataset-fashion-mnist chromium postgresql
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	elif [ -n "$$missing" ]; then echo "please install:$$missing (apt-get install$$missing)"; fi

demo: setup system-deps
	$(BIN)/lookalike demo

test: setup system-deps
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

clean:
	rm -rf $(VENV) .pytest_cache
