# Two commands: `make run` serves Spyglass (DEBUG off; `DEBUG=1 make run` for debug pages),
# `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: run test install install-dev lint format migrate demo serve worker bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamp files: reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# Logged-model agents need mlflow in the worker: with SPYGLASS_PLAYGROUND_LOGGED_MODELS on,
# `make run` and `make worker` install the `agents` extra too (once; plain `make run` skips it).
ifneq ($(filter 1 true True TRUE yes on y,$(SPYGLASS_PLAYGROUND_LOGGED_MODELS)),)
INSTALLED := $(VENV)/.installed-agents
else
INSTALLED := $(VENV)/.installed
endif

$(VENV)/.installed-agents: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[agents]'
	touch $@

install: $(INSTALLED)
install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py demo_data

serve: install
	$(BIN)/python manage.py serve $(HOST):$(PORT)

run: demo serve

# A worker beside `make serve` on Redis; SPYGLASS_INTERNAL_URL says where it reaches Spyglass
# (default http://$(HOST):$(PORT)) for logged-model agents.
worker: install
	SPYGLASS_INTERNAL_URL=$${SPYGLASS_INTERNAL_URL:-http://$(HOST):$(PORT)} \
		$(BIN)/celery -A webapp worker --loglevel INFO

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install-dev lint
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
