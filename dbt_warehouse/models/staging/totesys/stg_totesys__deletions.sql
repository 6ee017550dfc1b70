with source as (
    select * from {{ source('totesys', '_deletions') }}
),

renamed as (
    select
        source.table_name::varchar as source_table,
        source.key::integer as source_key,
        source.last_updated,
        source.deleted_at,
        source._manifest_seq,
        source._run_id,
        source._source_file,
        source._loaded_at
    from source
)

select * from renamed
