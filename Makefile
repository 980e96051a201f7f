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

# Debian packages: the Fashion-MNIST files (the demo downloads them instead where apt is unavailable).
system-deps:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

demo: setup system-deps
	$(BIN)/lookalike demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) .pytest_cache
