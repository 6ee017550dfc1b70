{#- The one place row versions are deduplicated (used once per entity, by its
    `int_<entity>__versions` model).

    A version is (key, last_updated, _row_hash): `_row_hash` is the md5 of the row's source
    columns (the staging model's row without lineage and quarantine columns), so a change that did not
    move last_updated (an ON DELETE SET NULL cascade, a manual fix, which the extract's
    reconciliation ships again) is a version of its own, with the same last_updated. The raw
    layer may hold the same version more than once (a re-delivered manifest, an overlapping
    watermark window, a re-shipped unchanged row); the first delivery (lowest _manifest_seq)
    wins. Incremental builds read only manifests after the last one processed (minus
    `manifest_lookback`) and anti-join on the version, so re-delivered versions add nothing and
    re-running adds nothing; a version kept before `_row_hash` existed (NULL) matches on
    (key, last_updated) alone. New versions get integer ids continuing from the largest id
    already assigned, in (last_updated, key, first delivery) order; ids never change. -#}
{% macro dedupe_versions(relation, key_column) -%}
with delivered as (
    select
        delivered_rows.*,
        {{ row_hash(relation, 'delivered_rows') }} as _row_hash
    from {{ relation }} as delivered_rows
    {%- if is_incremental() %}
        where
            delivered_rows._manifest_seq
            > (select coalesce(max(existing._manifest_seq), 0) from {{ this }} as existing)
            - {{ var('manifest_lookback', 0) | int }}
    {%- endif %}
),

first_delivery as (
    select distinct on ({{ key_column }}, last_updated, _row_hash) *
    from delivered
    order by
        {{ key_column }} asc, last_updated asc, _row_hash asc, _manifest_seq asc,
        _source_file asc
),

new_versions as (
    select first_delivery.*
    from first_delivery
    {%- if is_incremental() %}
        where not exists (
            select 1
            from {{ this }} as existing
            where
                existing.{{ key_column }} = first_delivery.{{ key_column }}
                and existing.last_updated = first_delivery.last_updated
                and (
                    existing._row_hash = first_delivery._row_hash
                    or existing._row_hash is null
                )
        )
    {%- endif %}
)

select
    (
        {%- if is_incremental() %}
            (select coalesce(max(existing.version_id), 0) from {{ this }} as existing)
        {%- else %}
            0
        {%- endif %}
        + row_number() over (
            order by
                new_versions.last_updated,
                new_versions.{{ key_column }},
                new_versions._manifest_seq,
                new_versions._row_hash
        )
    )::integer as version_id,
    new_versions.*
from new_versions
{%- endmacro %}

{#- The md5 of a row's source columns: the row as jsonb (keys in a canonical order) without the
    lineage columns and the quarantine reason. -#}
{% macro row_hash(relation, alias) -%}
    md5(
        (
            to_jsonb({{ alias }})
            - array['_manifest_seq', '_run_id', '_source_file', '_loaded_at', '_quarantine_reason']
        )::text
    )
{%- endmacro %}

{#- The latest version of each member of an entity: what dimensions hold. -#}
{% macro latest_versions(relation, key_column) -%}
    select distinct on ({{ key_column }}) *
    from {{ relation }}
    order by {{ key_column }} asc, last_updated desc, version_id desc
{%- endmacro %}


{#
    The versions a fact has not loaded yet: every version that passes the quarantine rules
    (`_quarantine_reason` is NULL) on a full build; on an incremental build only those with a
    larger version id than any record here (ids are assigned once, in ascending order, by the
    intermediate model), and never one whose record already exists, so a re-run adds nothing.
    A quarantined version never lands and never holds anything back: the fact's largest record
    id comes from versions that did land, and a corrected version later gets a larger id.
#}
{% macro new_fact_versions(versions, record_id) %}
    select int_versions.*
    from {{ versions }} as int_versions
    where
        int_versions._quarantine_reason is null
        {% if is_incremental() %}
            and int_versions.version_id > (
                select coalesce(max(existing.{{ record_id }}), 0) from {{ this }} as existing
            )
            and not exists (
                select 1 from {{ this }} as existing
                where existing.{{ record_id }} = int_versions.version_id
            )
        {% endif %}
{% endmacro %}
