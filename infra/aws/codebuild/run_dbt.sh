#!/usr/bin/env bash
# The dbt step of the pipeline, one phase per call; the CodeBuild buildspec calls it and so can
# anyone with the local stack running:
#
#   eval "$(totes env)" && bash infra/aws/codebuild/run_dbt.sh all
#
# Phases: install | debug | build | freshness | docs | publish-docs | all (= debug..publish-docs)
#
# Configuration, environment only:
#   WAREHOUSE_HOST WAREHOUSE_PORT WAREHOUSE_USER WAREHOUSE_PASSWORD WAREHOUSE_DB   (dbt profile)
#   PROCESSED_BUCKET        publish-docs uploads the docs site to s3://$PROCESSED_BUCKET/docs/
#                           (python -m publish.docs: needs runtime/ and publish/ beside this)
#   AWS_ENDPOINT_URL        optional: S3/CloudWatch endpoint (the local stack's moto server)
#   DBT_TARGET              optional: profile target
#   DBT_FULL_REFRESH=1      optional: dbt build --full-refresh
#   DBT_TESTS=full          the scheduled full-table tests (infra/aws/orchestration.py): the
#                           build phase runs `dbt test` over every row and builds nothing;
#                           docs and publish-docs do nothing
#   DOCS_PREFIX             optional: default docs/
#   TOTES_STAGE             dimension of the FreshnessLagSeconds metric (default local)
#   TOTES_PUBLISH_METRICS=0 optional: do not publish FreshnessLagSeconds
#   DBT, PYTHON             optional: executables (default: the repo's .venv if present, else PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$ROOT"

pick() { # pick <name>: the repo's .venv executable when there is one, else the one on PATH
    if [[ -x "$ROOT/.venv/bin/$1" ]]; then echo "$ROOT/.venv/bin/$1"; else echo "$1"; fi
}
DBT="${DBT:-$(pick dbt)}"
PYTHON="${PYTHON:-$(pick python)}"
PROJECT_DIR="${DBT_PROJECT_DIR:-dbt_warehouse}"
PROFILES_DIR="${DBT_PROFILES_DIR:-dbt_warehouse}"
TARGET_DIR="${DBT_TARGET_PATH:-$PROJECT_DIR/target}"  # dbt itself honours DBT_TARGET_PATH too
DOCS_PREFIX="${DOCS_PREFIX:-docs/}"

log() { # log <level> <message>: one JSON line, like the Lambdas' logs
    "$PYTHON" -c 'import json, sys, datetime as d; print(json.dumps({"ts": d.datetime.now(d.UTC).isoformat(timespec="milliseconds"), "level": sys.argv[1], "logger": "run_dbt", "message": sys.argv[2], "execution_id": sys.argv[3]}))' \
        "$1" "$2" "${EXECUTION_ID:-}" 2>/dev/null || echo "$1 run_dbt: $2"
}

require() {
    local missing=()
    for name in "$@"; do [[ -n "${!name+x}" ]] || missing+=("$name"); done
    if ((${#missing[@]})); then
        log ERROR "missing environment: ${missing[*]} (locally: eval \"\$(totes env)\")"
        exit 2
    fi
}

# Every command that parses the project gets the same --vars (the project hash): dbt keeps its
# saved parse only for the vars it was made with, so one without them re-parses everything.
dbt_cmd() {
    local args=("$@" --project-dir "$PROJECT_DIR" --profiles-dir "$PROFILES_DIR")
    case "$1" in
        build | test | source | docs) args+=(--vars "{\"totes_project\": \"$(project_hash)\"}") ;;
    esac
    [[ -n "${DBT_TARGET:-}" ]] && args+=(--target "$DBT_TARGET")
    log INFO "dbt ${*}"
    "$DBT" "${args[@]}"
}

phase_install() {
    "$PYTHON" -m pip install --quiet --upgrade pip
    "$PYTHON" -m pip install --quiet -c constraints.txt dbt-core dbt-postgres boto3 pg8000
    "$DBT" --version
}

phase_debug() {
    require WAREHOUSE_HOST WAREHOUSE_PORT WAREHOUSE_USER WAREHOUSE_PASSWORD WAREHOUSE_DB
    dbt_cmd debug
}

# A build resumes from the last successful build of the same project (its manifests: see
# dbt_warehouse/macros/build_state.sql): its tests check the rows that arrived since, and the
# full-table tests run on their own schedule (DBT_TESTS=full).
phase_build() {
    require WAREHOUSE_HOST WAREHOUSE_PORT WAREHOUSE_USER WAREHOUSE_PASSWORD WAREHOUSE_DB
    if [[ -f "$PROJECT_DIR/packages.yml" || -f "$PROJECT_DIR/dependencies.yml" ]]; then
        dbt_cmd deps
    fi
    if full_tests; then
        dbt_cmd test  # no build: since_seq is 0, every test sees every row
    elif [[ "${DBT_FULL_REFRESH:-0}" == 1 ]]; then
        dbt_cmd build --full-refresh
    else
        dbt_cmd build
    fi
}

full_tests() { [[ "${DBT_TESTS:-}" == full ]]; }

# The same hash as totes/dbt_build.py's project_hash: every file of the project but dbt's output
# and hidden files, as sha256sum lists them in path order, then dbt's version.
project_hash() {
    local listing versions
    listing="$(find "$PROJECT_DIR" -type f ! -path '*/.*' ! -path '*/target/*' \
        ! -path '*/logs/*' ! -path '*/dbt_packages/*' ! -path '*/__pycache__/*' -print0 |
        LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
    versions="$("$PYTHON" -c 'from importlib.metadata import version as v; print(v("dbt-core"), v("dbt-postgres"))')"
    printf '%s dbt %s' "$listing" "$versions" | sha256sum | cut -d' ' -f1
}

# dbt source freshness warns at 15 minutes and errors at 30 (a failed build, so an alert).
# Whatever the outcome, the worst lag goes to CloudWatch as Totes/Pipeline FreshnessLagSeconds.
phase_freshness() {
    require WAREHOUSE_HOST WAREHOUSE_PORT WAREHOUSE_USER WAREHOUSE_PASSWORD WAREHOUSE_DB
    rm -f "$TARGET_DIR/sources.json"
    local rc=0
    dbt_cmd source freshness || rc=$?
    if [[ "${TOTES_PUBLISH_METRICS:-1}" != 0 ]]; then
        publish_freshness_metric || log WARNING "could not publish FreshnessLagSeconds"
    fi
    return "$rc"
}

publish_freshness_metric() {
    SOURCES_JSON="$TARGET_DIR/sources.json" "$PYTHON" - <<'PY'
import json, os, pathlib, sys

import boto3

path = pathlib.Path(os.environ["SOURCES_JSON"])
if not path.exists():
    sys.exit("no sources.json: freshness did not run")
results = json.loads(path.read_text()).get("results", [])
lags = [r["max_loaded_at_time_ago_in_s"] for r in results if r.get("max_loaded_at_time_ago_in_s") is not None]
if not lags:
    sys.exit("sources.json has no freshness results")
cloudwatch = boto3.client("cloudwatch", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
cloudwatch.put_metric_data(
    Namespace="Totes/Pipeline",
    MetricData=[{
        "MetricName": "FreshnessLagSeconds",
        "Dimensions": [{"Name": "Stage", "Value": os.environ.get("TOTES_STAGE", "local")}],
        "Value": max(lags),
        "Unit": "Seconds",
    }],
)
print(json.dumps({"level": "INFO", "logger": "run_dbt", "message": "freshness published",
                  "freshness_lag_s": max(lags), "sources": len(lags)}))
PY
}

phase_docs() {
    require WAREHOUSE_HOST WAREHOUSE_PORT WAREHOUSE_USER WAREHOUSE_PASSWORD WAREHOUSE_DB
    if full_tests; then return; fi  # a test run changes nothing the docs show
    dbt_cmd docs generate --static
}

# The docs site goes to the processed bucket through the publish step's own code (publish.docs,
# the same function the local cycle calls): under DOCS_PREFIX<yyyy>/<mm>/<dd>/<build id>/, each
# object created with IfNoneMatch, never overwritten. The build id is EXECUTION_ID's (or
# CODEBUILD_BUILD_ID's) last `:` part.
phase_publish_docs() {
    if full_tests; then return; fi
    require PROCESSED_BUCKET
    DOCS_PREFIX="$DOCS_PREFIX" "$PYTHON" -m publish.docs --target-dir "$TARGET_DIR"
}

on_exit() {
    local rc=$?
    if ((rc)); then log ERROR "phase ${PHASE} failed (exit ${rc})"; fi
    return "$rc"
}

main() {
    local phase="${1:-}"
    PHASE="$phase"
    trap on_exit EXIT
    case "$phase" in
        install) phase_install ;;
        debug) phase_debug ;;
        build) phase_build ;;
        freshness) phase_freshness ;;
        docs) phase_docs ;;
        publish-docs) phase_publish_docs ;;
        all)
            phase_debug
            phase_build
            phase_freshness
            phase_docs
            phase_publish_docs
            ;;
        *)
            echo "usage: $0 install|debug|build|freshness|docs|publish-docs|all" >&2
            exit 2
            ;;
    esac
    log INFO "phase ${phase} done"
}

main "$@"
