{#- What a build reads and tests again: the rows of manifests it has not built yet.

    Every `dbt build` / `dbt run` records itself in `ops.dbt_invocations` (on-run-start, macro
    totes_begin_build): `through_seq`, the newest manifest in the load ledger as it starts, and
    `since_seq`, the `through_seq` of the last build that succeeded with the same project
    (var `totes_project`: a hash of the dbt project's files the caller passes). `since_seq` is
    0 (every row) when no build succeeded yet, when the project changed, or when no hash was
    given (a hand-run `dbt build`), and in any other command (`dbt test`: the full tests).
    on-run-end (totes_end_build) marks the build succeeded only when every node passed; a build
    that failed or was killed is never a `since_seq`, so its rows are read again next time.

    Every row above `since_seq` arrived after the last successful build: tests that check only
    those rows (get_where_subquery below) and dimensions that re-derive only the members those
    rows touch (changed_members) leave nothing out. A build that passes `totes_project` must
    therefore build everything downstream of each source with rows above `since_seq`
    (`totes/dbt_build.py` selects exactly that).
-#}

{% macro totes_records_build() -%}
    {{ return(flags.WHICH in ['build', 'run']) }}
{%- endmacro %}

{% macro totes_project_literal() -%}
    '{{ var("totes_project", "") | string | replace("'", "''") }}'
{%- endmacro %}

{% macro totes_begin_build() %}
    {%- if execute and totes_records_build() -%}
        {%- set ledger = adapter.get_relation(
            database=target.database, schema=var('raw_schema'), identifier='_manifest_ledger'
        ) -%}
        {#- The caller's plan read the ledger first: this build claims no manifest above the
            newest it planned for (one loaded in between is built by the next build). Read when
            the hook runs, never at parse time, so a new value costs dbt no re-parse. -#}
        {%- set ceiling = env_var('TOTES_DBT_THROUGH_SEQ', '') -%}
        create schema if not exists ops;
        create table if not exists ops.dbt_invocations (
            invocation_id text primary key,
            command text not null,
            project text not null,
            since_seq bigint not null,
            through_seq bigint not null,
            status text not null default 'running'
                check (status in ('running', 'succeeded', 'failed')),
            started_at timestamptz not null default clock_timestamp(),
            finished_at timestamptz
        );
        create table if not exists ops.dbt_model_builds (
            model text primary key,
            invocation_id text not null,
            built_at timestamptz not null,
            rebuilt_at timestamptz  -- the last build that re-derived every row (since_seq 0)
        );
        alter table ops.dbt_model_builds add column if not exists rebuilt_at timestamptz;
        insert into ops.dbt_invocations (invocation_id, command, project, since_seq, through_seq)
        select
            '{{ invocation_id }}',
            '{{ flags.WHICH }}',
            {{ totes_project_literal() }},
            coalesce((
                select previous.through_seq
                from ops.dbt_invocations as previous
                where
                    previous.status = 'succeeded'
                    and previous.project = {{ totes_project_literal() }}
                    and previous.project <> ''
                order by previous.finished_at desc
                limit 1
            ), 0),
            {% if ledger is none -%}
                0
            {%- elif ceiling | length -%}
                (
                    select least({{ ceiling | int }}, coalesce(max(ledger.seq), 0))
                    from {{ ledger }} as ledger
                )
            {%- else -%}
                (select coalesce(max(ledger.seq), 0) from {{ ledger }} as ledger)
            {%- endif %}
    {%- endif -%}
{% endmacro %}

{% macro totes_end_build(results) %}
    {%- if execute and totes_records_build() -%}
        {%- set failed = results | selectattr(
            'status', 'in', ['error', 'fail', 'runtime error', 'skipped']
        ) | list -%}
        update ops.dbt_invocations
        set
            status = '{{ "failed" if failed else "succeeded" }}',
            finished_at = clock_timestamp()
        where invocation_id = '{{ invocation_id }}'
    {%- endif -%}
{% endmacro %}

{#- A post-hook of every mart: commits with the model's own transaction, so `publish` can tell a
    dimension no build has touched since it last looked (publish/publish.py) even when dbt is
    killed before on-run-end, and one that a build re-derived whole (`rebuilt_at`: the
    project changed, or a first build) from one that re-derived only the changed members. -#}
{% macro totes_record_model_build() %}
    {%- if execute and totes_records_build() -%}
        {%- set whole = totes_since_seq() == 0 -%}
        insert into ops.dbt_model_builds (model, invocation_id, built_at, rebuilt_at)
        values (
            '{{ this.identifier }}', '{{ invocation_id }}', clock_timestamp(),
            {{ 'clock_timestamp()' if whole else 'null' }}
        )
        on conflict (model) do update
        set
            invocation_id = excluded.invocation_id,
            built_at = excluded.built_at,
            rebuilt_at = coalesce(excluded.rebuilt_at, ops.dbt_model_builds.rebuilt_at)
    {%- endif -%}
{% endmacro %}

{#- This build's since_seq as a number (0: every row). Read when the node runs, so the SQL
    holds a literal the planner can estimate (a subquery would be guessed at a third of the
    table, and scanned). -#}
{% macro totes_since_seq() -%}
    {%- if not (execute and totes_records_build()) -%}
        {{ return(0) }}
    {%- endif -%}
    {%- set found = run_query(
        "select since_seq from ops.dbt_invocations where invocation_id = '" ~ invocation_id ~ "'"
    ) -%}
    {{ return(found.columns[0].values()[0] | int if found.rows | length else 0) }}
{%- endmacro %}

{#- `relation`'s versions from manifests above since_seq, or all of it (a full build). -#}
{% macro changed_versions(relation) -%}
    {%- set since = totes_since_seq() if is_incremental() else 0 -%}
    {%- if since > 0 -%}
        (select * from {{ relation }} where _manifest_seq > {{ since }}) as changed_versions
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- Every version of the members of `relation` with a version above since_seq (a dimension
    re-derives only those members; the unique index on (key, last_updated) finds them), or all
    of it (a full build). -#}
{% macro changed_members(relation, key_column) -%}
    {%- set since = totes_since_seq() if is_incremental() else 0 -%}
    {%- if since > 0 -%}
        (
            select * from {{ relation }}
            where {{ key_column }} in (
                select changed.{{ key_column }} from {{ relation }} as changed
                where changed._manifest_seq > {{ since }}
            )
        ) as changed_members
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- The rows of `relation` a build's tests check: every row, or (since_seq above 0) the rows
    of manifests above it; '' for every row. The full-table tests run on their own schedule
    (`dbt test`, where since_seq is 0: `totes test --full`, the nightly CodeBuild run).
    Uniqueness and foreign keys are also constraints and unique indexes the database checks
    on every insert (the marts' contracts, the intermediate models' indexes), so new rows
    cannot break them against old ones unseen; exactly-once against the whole of raw is the
    singular test assert_fact_versions_match_raw, scoped the same way. -#}
{% macro totes_new_rows(relation) -%}
    {%- set since = totes_since_seq() -%}
    {%- if since == 0 or relation is string or relation.identifier is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set name = relation.identifier -%}
    {%- set by_seq = "_manifest_seq > " ~ since -%}
    {#- fact (or its current or history view) -> (entity, column to match, versions' column) -#}
    {%- set versioned = {
        'fact_sales_order': ('sales_order', 'sales_record_id', 'version_id'),
        'fact_purchase_order': ('purchase_order', 'purchase_record_id', 'version_id'),
        'fact_payment': ('payment', 'payment_record_id', 'version_id'),
        'fact_sales_order_current': ('sales_order', 'sales_order_id', 'sales_order_id'),
        'fact_purchase_order_current': ('purchase_order', 'purchase_order_id', 'purchase_order_id'),
        'fact_payment_current': ('payment', 'payment_id', 'payment_id'),
        'fact_sales_order_history': ('sales_order', 'sales_order_id', 'sales_order_id'),
        'fact_purchase_order_history': ('purchase_order', 'purchase_order_id', 'purchase_order_id'),
        'fact_payment_history': ('payment', 'payment_id', 'payment_id'),
        'dim_transaction': ('transaction', 'transaction_id', 'transaction_id'),
    } -%}
    {%- if relation.schema == var('raw_schema') -%}
        {{ return(by_seq) }}
    {%- elif name.startswith('stg_totesys__') or name.endswith('__versions') -%}
        {{ return(by_seq) }}
    {%- elif name in versioned -%}
        {%- set entity, column, versions_column = versioned[name] -%}
        {%- set versions_id = 'model.' ~ project_name ~ '.int_' ~ entity ~ '__versions' -%}
        {%- set versions = graph.nodes[versions_id] -%}
        {%- set versions_relation = api.Relation.create(
            database=versions.database, schema=versions.schema, identifier=versions.alias
        ) -%}
        {{ return(
            column ~ " in (select new_versions." ~ versions_column ~ " from "
            ~ versions_relation ~ " as new_versions where new_versions." ~ by_seq ~ ")"
        ) }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- dbt's own, plus the new-rows scope of totes_new_rows. -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [config.get('where'), totes_new_rows(relation)] | select | list -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where ({{ conditions | join(') and (') }})) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{#- A fact's index on (key, last_updated): the `*_current` views, the new-rows tests and
    assert_fact_versions_match_raw find a key's versions through it instead of scanning the
    fact. A post-hook, so warehouses built before it get it too (`if not exists`). -#}
{% macro create_version_index(key_column) %}
    create index if not exists "{{ this.identifier }}__{{ key_column }}_version"
    on {{ this }} ({{ key_column }}, last_updated_date, last_updated_time)
{% endmacro %}

{#- A versions model's partial index on its quarantined versions (a handful of millions):
    quarantine.quarantined_rows, rebuilt every build, finds them by it instead of a scan. -#}
{% macro create_quarantine_index() %}
    {%- if this.identifier.endswith('__versions') -%}
        create index if not exists "{{ this.identifier }}__quarantined"
        on {{ this }} (version_id) where _quarantine_reason is not null
    {%- endif -%}
{% endmacro %}
