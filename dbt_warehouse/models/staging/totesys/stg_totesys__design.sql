with source as (
    select * from {{ source('totesys', 'design') }}
),

renamed as (
    select
        design_id::integer as design_id,
        design_name::varchar as design_name,
        file_location::varchar as file_location,
        file_name::varchar as file_name,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(
            required=['design_name', 'file_location', 'file_name']
        ) }} as _quarantine_reason
    from source
)

select * from renamed
