-- Every distinct deletion (table, key, last_updated of the deleted version) once, with an
-- integer deletion_id assigned once, in the order the deletions were seen.
{{
    config(
        indexes=[
            {'columns': ['source_table', 'source_key', 'last_updated'], 'unique': true},
            {'columns': ['deletion_id'], 'unique': true},
            {'columns': ['_manifest_seq']},
        ]
    )
}}

with delivered as (
    select delivered_rows.*
    from {{ ref('stg_totesys__deletions') }} as delivered_rows
    {%- if is_incremental() %}
        where
            delivered_rows._manifest_seq
            > (select coalesce(max(existing._manifest_seq), 0) from {{ this }} as existing)
            - {{ var('manifest_lookback', 0) | int }}
    {%- endif %}
),

-- a deletion delivered twice (a skipped manifest's window covered again) is one deletion,
-- carrying its first delivery
first_delivery as (
    select distinct on (source_table, source_key, last_updated) *
    from delivered
    order by source_table asc, source_key asc, last_updated asc, _manifest_seq asc, _source_file asc
),

new_deletions as (
    select first_delivery.*
    from first_delivery
    {%- if is_incremental() %}
        where not exists (
            select 1
            from {{ this }} as existing
            where
                existing.source_table = first_delivery.source_table
                and existing.source_key = first_delivery.source_key
                and existing.last_updated is not distinct from first_delivery.last_updated
        )
    {%- endif %}
)

select
    (
        {%- if is_incremental() %}
            (select coalesce(max(existing.deletion_id), 0) from {{ this }} as existing)
        {%- else %}
            0
        {%- endif %}
        + row_number() over (
            order by
                new_deletions._manifest_seq,
                new_deletions.deleted_at,
                new_deletions.source_table,
                new_deletions.source_key
        )
    )::integer as deletion_id,
    new_deletions.source_table,
    new_deletions.source_key,
    new_deletions.last_updated,
    new_deletions.deleted_at,
    new_deletions._manifest_seq,
    new_deletions._run_id,
    new_deletions._source_file,
    new_deletions._loaded_at
from new_deletions
