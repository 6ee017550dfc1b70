# Everything a developer and CI run. Each target builds .venv itself when it is missing or stale.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A separate stack for `make test`'s warehouse checks, so it never touches the demo's data.
TEST_HOME := $(CURDIR)/.totes/ci
DBT := cd dbt_warehouse && ../$(BIN)/dbt
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install demo test pytest dbt-check lint fmt synth deploy docs report bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create or refresh .venv from pyproject.toml + constraints.txt

demo: $(STAMP) ## the whole pipeline on realistic data: up, seed, run, report
	$(BIN)/totes up
	$(BIN)/totes seed --scale 1 --seed 42 --if-empty
	$(BIN)/totes status

test: $(STAMP) lint pytest ## every check CI runs
	@echo "make test: all checks passed"

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP) ## ruff (Python)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP) ## format Python
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## stop the stacks and delete every generated file
	-@test -x $(BIN)/totes && $(BIN)/totes down --purge
	-@test -x $(BIN)/totes && TOTES_HOME=$(TEST_HOME) $(BIN)/totes down --purge
	rm -rf $(VENV) .totes .pytest_cache .ruff_cache dbt_warehouse/target dbt_warehouse/logs \
		infra/aws/cdk.out reports *.egg-info
