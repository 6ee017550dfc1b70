# Everything a developer and CI run. Each target builds .venv itself when it is missing or stale.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOTES := $(BIN)/totes
# `make test` checks the warehouse on a stack of its own, never the demo's data.
CHECK_HOME := $(CURDIR)/.totes/check
DBT_FLAGS := --project-dir dbt_warehouse --profiles-dir dbt_warehouse
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install demo test lint pytest warehouse-check fmt bench docs report synth deploy \
	lambda-deps browser-deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create or refresh .venv from pyproject.toml + constraints.txt

demo: $(STAMP) ## the whole pipeline on realistic data: up, seed, run, report (idempotent)
	$(TOTES) up
	$(TOTES) seed --scale 1 --seed 42 --if-empty
	$(TOTES) run
	$(TOTES) report --out reports
	$(TOTES) status
	@echo
	@echo "marts:   schema marts in the warehouse: eval \"\$$($(TOTES) env)\" && psql \"\$$WAREHOUSE_DSN\""
	@echo "report:  $(CURDIR)/reports/report.html (charts in reports/charts/)"
	@echo "docs:    make docs (http://127.0.0.1:8080); the site is also in s3://totes-processed/docs/"

test: $(STAMP) lint pytest warehouse-check ## everything CI runs
	@echo "make test: every check passed"

# lint-imports checks the layers in pyproject.toml ([tool.importlinter]); --no-cache: no cache
# folder left in the checkout (the graph takes under a second to build).
lint: $(STAMP) ## ruff, the import layers (lint-imports), sqlfluff (on a local warehouse)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	TOTES_HOME=$(CHECK_HOME) $(TOTES) up
	set -a && eval "$$(TOTES_HOME=$(CHECK_HOME) $(TOTES) env)" && set +a && \
		cd dbt_warehouse && ../$(BIN)/sqlfluff lint models tests analyses macros

pytest: $(STAMP) browser-deps ## pytest suites (real PostgreSQL + moto, CDK assertions, cfn-lint)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# A full cycle on a seeded warehouse of its own, then dbt build and source freshness again
# exactly as a data engineer (or the CodeBuild job) runs them; the stack is purged after.
warehouse-check: $(STAMP) ## totes run, dbt build, dbt source freshness on a local warehouse
	TOTES_HOME=$(CHECK_HOME) $(TOTES) up
	TOTES_HOME=$(CHECK_HOME) $(TOTES) seed --scale 0.05 --seed 7 --if-empty
	TOTES_HOME=$(CHECK_HOME) $(TOTES) run
	set -a && eval "$$(TOTES_HOME=$(CHECK_HOME) $(TOTES) env)" && set +a && \
		$(BIN)/dbt build $(DBT_FLAGS) && \
		$(BIN)/dbt source freshness $(DBT_FLAGS)
	TOTES_HOME=$(CHECK_HOME) $(TOTES) down --purge

fmt: $(STAMP) ## format Python (SQL: cd dbt_warehouse && sqlfluff fix)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# On a stack of its own: the benchmarks need sales_order at --scale 100, not the demo's data.
BENCH_HOME := $(CURDIR)/.totes/bench
bench: $(STAMP) ## extract and load benchmarks at --scale 100 (prints figures; minutes)
	TOTES_HOME=$(BENCH_HOME) $(TOTES) up
	set -a && eval "$$(TOTES_HOME=$(BENCH_HOME) $(TOTES) env)" && set +a && \
		$(BIN)/python benchmarks/bench_extract.py --scale 100 && \
		$(BIN)/python benchmarks/bench_load.py

LAMBDA_DEPS := build/lambda-deps
STAGE ?= dev
CDK_ARGS ?=

lambda-deps: $(STAMP) ## pure-Python Lambda dependencies into build/lambda-deps/python (before deploy)
	rm -rf $(LAMBDA_DEPS)
	$(BIN)/python -m pip install --quiet --no-deps --no-compile --target $(LAMBDA_DEPS)/python \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
		--only-binary=:all: -c constraints.txt -r infra/aws/lambda-requirements.txt

synth: $(STAMP) ## synthesise the AWS stack offline into infra/aws/cdk.out and cfn-lint it
	cd infra/aws && TOTES_STAGE=$(STAGE) ../../$(BIN)/python app.py
	$(BIN)/cfn-lint --ignore-checks W3005 -- infra/aws/cdk.out/*.template.json

deploy: lambda-deps ## deploy to AWS: make deploy ALERT_EMAIL=you@example.org [STAGE=prod]
	@test -n "$(ALERT_EMAIL)" || { echo "ALERT_EMAIL=you@example.org is required"; exit 1; }
	cd infra/aws && npx --yes aws-cdk@2 deploy --app "../../$(BIN)/python app.py" \
		-c stage=$(STAGE) -c alert_email=$(ALERT_EMAIL) $(CDK_ARGS)

report: $(STAMP) ## the business dashboard from the marts: reports/report.html + charts/*.png
	$(TOTES) report --out reports

DOCS_PORT ?= 8080
DOCS_TARGET := $(CURDIR)/dbt_warehouse/target/docs

docs: $(STAMP) ## build the dbt docs site and serve it on http://127.0.0.1:$(DOCS_PORT)
	set -a && eval "$$($(TOTES) env)" && set +a && \
		$(BIN)/dbt docs generate --static $(DBT_FLAGS) --target-path $(DOCS_TARGET)
	@echo "docs as a file: $(DOCS_TARGET)/static_index.html"
	set -a && eval "$$($(TOTES) env)" && set +a && \
		$(BIN)/dbt docs serve $(DBT_FLAGS) --target-path $(DOCS_TARGET) \
		--host 127.0.0.1 --port $(DOCS_PORT) --no-browser

browser-deps: ## headless Chromium for the browser tests (Debian packages; skipped where impossible)
	bash tests/support/ensure_chromium.sh

clean: ## stop the stacks and delete every generated file
	-@test -x $(TOTES) && $(TOTES) down --purge
	-@test -x $(TOTES) && TOTES_HOME=$(CHECK_HOME) $(TOTES) down --purge
	-@test -x $(TOTES) && TOTES_HOME=$(BENCH_HOME) $(TOTES) down --purge
	rm -rf $(VENV) .totes .pytest_cache .ruff_cache dbt_warehouse/target dbt_warehouse/logs \
		infra/aws/cdk.out reports build *.egg-info
