# Two commands for a fresh machine: `make run` (install + open the app) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN := torch==2.13.0

.PHONY: run test install browser bench screenshots demo clean format

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The pinned CPU wheel first, so the `torch>=2.4` range never pulls a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m compileall -q core tui  # bytecode once: a checkout would otherwise compile on every start
	$(VENV)/bin/tunelab

# A pytest-xdist worker per core, each pinned to its core with the processes it starts (tests/conftest.py);
# files stay whole on one worker, so a file's fixtures are built once.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m compileall -q core tui tests  # bytecode once: every CLI, worker and trainer the suite starts reads it
	$(PY) -m pytest -q -n $(JOBS) --dist loadfile

# Debian's Chromium for the browser test of `tunelab serve` (tests/integration/test_serve.py skips without one).
# It needs root and apt-get, so `make test` never runs it; CI's .ci/run does, before `make test`.
browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

bench: install
	$(PY) -m bench

screenshots: install
	$(PY) -m tui.screenshots docs/screenshots

demo: install
	$(VENV)/bin/tunelab demo build

clean:
	rm -rf $(VENV) build dist .pytest_cache
