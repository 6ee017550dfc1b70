# Everything a developer and CI run. Each target builds .venv itself when it is missing or stale.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOTES := $(BIN)/totes
# `make test` lints and checks the warehouse on stacks of its own, never the demo's data: one
# each, since the two run at the same time.
LINT_HOME := $(CURDIR)/.totes/lint
CHECK_HOME := $(CURDIR)/.totes/check
DBT_FLAGS := --project-dir dbt_warehouse --profiles-dir dbt_warehouse
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Bytecode goes to one cache inside .venv, never into the checkout (no __pycache__ folders), and
# is kept: each module is compiled the first time any process imports it, once. The install
# compiles nothing (most of the 14,000 modules in .venv, aws_cdk's 176 MB above all, are never
# imported). An inherited PYTHONDONTWRITEBYTECODE would make every dbt and totes process compile
# its imports again, so it is not passed on.
export PYTHONPYCACHEPREFIX := $(CURDIR)/$(VENV)/pycache
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install lock demo test lint scan pytest warehouse-check fmt bench docs report synth deploy \
	lambda-deps dbt-wheels browser-deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# uv installs .venv from uv.lock, exactly: `--locked` fails on a lock that no longer matches
# pyproject.toml instead of re-resolving, and what the lock does not name is removed. uv is a
# dev dependency, so the lock names its release too: on a machine with only python3, pip and
# make, pip puts that release into .venv first. `make lock` re-locks after a dependency change.
# aws-cdk-lib and its dependency aws-cdk.cloud-assembly-schema both ship
# aws_cdk/cloud_assembly_schema/__init__.py; pip installs dependencies first, so aws-cdk-lib's
# copy wins, which the CDK's jsii types need. uv installs in no set order, so aws-cdk-lib is
# installed again after the sync (tests/project/test_lock.py checks which copy is there).
UV := $(BIN)/uv
export UV_PYTHON_DOWNLOADS := never
LOCKED_UV = $(PYTHON) -c 'import tomllib; print(next(p["version"] for p in \
	tomllib.load(open("uv.lock", "rb"))["package"] if p["name"] == "uv"))'

$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is required (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet "uv==$$($(LOCKED_UV))"
	$(UV) sync --quiet --locked --extra dev --python $(BIN)/python
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --reinstall-package aws-cdk-lib \
		-c constraints.txt aws-cdk-lib
	@touch $(STAMP)

install: $(STAMP) ## create or refresh .venv from uv.lock (uv; bootstrapped with pip)

# constraints.txt holds the lock's pins for pip, which CodeBuild's install, `make lambda-deps`
# and `make dbt-wheels` use; tests/project/test_lock.py keeps it equal to uv.lock.
CONSTRAINTS_EXPORT := export --quiet --frozen --extra dev --no-emit-project --no-hashes \
	--no-annotate --no-header
lock: $(STAMP) ## re-lock after a change to pyproject.toml's dependencies: uv.lock + constraints.txt
	$(UV) lock
	{ echo "# uv.lock's pins for pip, written by \`make lock\` (uv export): edit pyproject.toml."; \
		$(UV) $(CONSTRAINTS_EXPORT); } > constraints.txt

demo: $(STAMP) ## the whole pipeline on realistic data: up, seed, run, report, verify (idempotent)
	$(TOTES) up
	$(TOTES) seed --scale 1 --seed 42 --if-empty
	$(TOTES) run
	$(TOTES) report --out reports
	$(TOTES) status
	$(TOTES) verify
	@echo
	@echo "marts:   schema marts in the warehouse: eval \"\$$($(TOTES) env)\" && psql \"\$$WAREHOUSE_DSN\""
	@echo "report:  $(CURDIR)/reports/report.html (charts in reports/charts/)"
	@echo "docs:    make docs (http://127.0.0.1:8080); the site is also in s3://totes-processed/docs/"

# The three at once: pytest leaves a quarter of the 2 cores idle (its workers wait on dbt and
# PostgreSQL), which lint and the warehouse check fill. Their lines interleave with pytest's.
test: $(STAMP) browser-deps ## everything CI runs: lint, pytest and the warehouse check, at once
	@$(MAKE) --no-print-directory -j3 lint pytest warehouse-check
	@TOTES_HOME=$(LINT_HOME) $(TOTES) down
	@echo "make test: every check passed"

# lint-imports checks the layers in pyproject.toml ([tool.importlinter]); --no-cache: no cache
# folder left in the checkout (the graph takes under a second to build). sqlfluff on every core
# (`--processes 0`): dbt renders each file in the main process, the workers parse and lint.
lint: $(STAMP) ## ruff, the import layers (lint-imports), sqlfluff (on a local warehouse), checkov
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	TOTES_HOME=$(LINT_HOME) $(TOTES) up
	set -a && eval "$$(TOTES_HOME=$(LINT_HOME) $(TOTES) env)" && set +a && \
		cd dbt_warehouse && ../$(BIN)/sqlfluff lint --processes 0 models tests analyses macros
	@$(MAKE) --no-print-directory scan

# checkov, the security scanner, in a venv of its own: it pins boto3 exactly, to a release the
# project's awscli, moto and awswrangler cannot use (infra/aws/checkov-requirements.txt says
# more). Installed once by uv from its own lock (about 100 packages).
CHECKOV_VENV := $(VENV)/tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_REQUIREMENTS := infra/aws/checkov-requirements.txt
CHECKOV_LOCK := infra/aws/checkov-constraints.txt
SCAN_OUT := infra/aws/cdk.out/scan
# Offline and quiet: no Prisma Cloud download (--skip-download, BC_SKIP_MAPPING), no PyPI
# version check, no package scan; failed checks and the summary only.
CHECKOV := BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=true \
	CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false $(CHECKOV_VENV)/bin/checkov \
	--framework cloudformation --skip-download --quiet --compact

$(CHECKOV_STAMP): $(CHECKOV_REQUIREMENTS) $(CHECKOV_LOCK) | $(STAMP)
	@test -x $(CHECKOV_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python --exact \
		-c $(CHECKOV_LOCK) -r $(CHECKOV_REQUIREMENTS)
	@touch $@

# Every variant of infra/aws/variants.py (default; private, in a VPC) synthesised offline into
# infra/aws/cdk.out/scan/<variant>/ and scanned: any failed check fails the target. Skips are
# in the template's own metadata, each with its reason (tests/infra/test_infra_security.py).
scan: $(STAMP) $(CHECKOV_STAMP) ## checkov on every synthesised variant of the AWS stack: 0 failed
	rm -rf $(SCAN_OUT)
	$(BIN)/python -m infra.aws.variants $(SCAN_OUT)
	@for template in $(SCAN_OUT)/*/*.template.json; do \
		echo "checkov $$template"; \
		$(CHECKOV) -f "$$template" || exit 1; \
	done

# PYTEST_ARGS: more options, e.g. PYTEST_ARGS=--durations=30 for the slowest tests.
# Three workers on two cores: each spends much of its time waiting on dbt, PostgreSQL and moto
# (a fresh-clone `make test` took 504 s with two, 471 s with three, on the 2-core machine).
PYTEST_ARGS ?=
pytest: $(STAMP) browser-deps ## pytest suites (real PostgreSQL + moto, CDK assertions, cfn-lint)
	$(BIN)/python -m pytest -n 3 --dist loadgroup $(PYTEST_ARGS)

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
# In one run: the cycle table at --scale 1 and 100 (first, no-change, incremental cycles), the
# manifest-age benchmark (10 vs 100,000 manifests), then the bulk extract and load beside a raw
# COPY with peak memory. Each makes and drops databases and buckets of its own on this stack.
bench: $(STAMP) ## cycle, manifest-age, extract and load benchmarks (prints figures; 15+ minutes)
	TOTES_HOME=$(BENCH_HOME) $(TOTES) up
	@uptime
	set -a && eval "$$(TOTES_HOME=$(BENCH_HOME) $(TOTES) env)" && set +a && \
		$(BIN)/python benchmarks/bench_cycle.py --scales 1,100 && \
		$(BIN)/python benchmarks/bench_manifest_age.py --ages 10,100000 && \
		$(BIN)/python benchmarks/bench_extract.py --scale 100 && \
		$(BIN)/python benchmarks/bench_load.py
	@uptime

LAMBDA_DEPS := build/lambda-deps
STAGE ?= dev
CDK_ARGS ?=

lambda-deps: $(STAMP) ## pure-Python Lambda dependencies into build/lambda-deps/python (before deploy)
	rm -rf $(LAMBDA_DEPS)
	$(BIN)/python -m pip install --quiet --no-deps --no-compile --target $(LAMBDA_DEPS)/python \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
		--only-binary=:all: -c constraints.txt -r infra/aws/lambda-requirements.txt

# CodeBuild's install phase from these wheels, not PyPI, when the stack runs in a VPC (no NAT
# needed); compute.py ships them in the CodeBuild source. About 60 wheels, 45 MB.
DBT_WHEELS := build/dbt-wheels
dbt-wheels: $(STAMP) ## wheels of what CodeBuild installs into build/dbt-wheels (before a VPC deploy)
	rm -rf $(DBT_WHEELS)
	$(BIN)/python -m pip download --quiet --dest $(DBT_WHEELS) \
		--platform manylinux2014_x86_64 --implementation cp --python-version 3.12 \
		--only-binary=:all: -c constraints.txt -r infra/aws/codebuild-wheels.txt

synth: $(STAMP) ## synthesise the AWS stack offline into infra/aws/cdk.out and cfn-lint it
	cd infra/aws && TOTES_STAGE=$(STAGE) ../../$(BIN)/python app.py
	$(BIN)/cfn-lint --ignore-checks W3005 -- infra/aws/cdk.out/*.template.json

deploy: lambda-deps dbt-wheels ## deploy to AWS: make deploy ALERT_EMAIL=you@example.org [STAGE=prod]
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
	-@test -x $(TOTES) && TOTES_HOME=$(LINT_HOME) $(TOTES) down --purge
	-@test -x $(TOTES) && TOTES_HOME=$(CHECK_HOME) $(TOTES) down --purge
	-@test -x $(TOTES) && TOTES_HOME=$(BENCH_HOME) $(TOTES) down --purge
	rm -rf $(VENV) .totes .pytest_cache .ruff_cache dbt_warehouse/target dbt_warehouse/logs \
		infra/aws/cdk.out reports build *.egg-info
