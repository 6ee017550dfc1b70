{#- The one place row versions are deduplicated (used once per entity, by its
    `int_<entity>__versions` model).

    A version is (key, last_updated). The raw layer may hold the same version more than once
    (a re-delivered manifest, an overlapping watermark window); the first delivery
    (lowest _manifest_seq) wins. Incremental builds read only manifests after the last one
    processed (minus `manifest_lookback`) and anti-join on (key, last_updated), so re-delivered
    versions add nothing and re-running adds nothing. New versions get integer ids continuing
    from the largest id already assigned, in (last_updated, key) order; ids never change. -#}
{% macro dedupe_versions(relation, key_column) -%}
with delivered as (
    select * from {{ relation }}
    {%- if is_incremental() %}
        where
            _manifest_seq
            > (select coalesce(max(existing._manifest_seq), 0) from {{ this }} as existing)
            - {{ var('manifest_lookback', 0) | int }}
    {%- endif %}
),

first_delivery as (
    select distinct on ({{ key_column }}, last_updated) *
    from delivered
    order by {{ key_column }} asc, last_updated asc, _manifest_seq asc, _source_file asc
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
        + row_number() over (order by new_versions.last_updated, new_versions.{{ key_column }})
    )::integer as version_id,
    new_versions.*
from new_versions
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
