with source as (
    select * from {{ source('totesys', 'department') }}
),

renamed as (
    select
        department_id::integer as department_id,
        department_name::varchar as department_name,
        location::varchar as location,
        manager::varchar as manager,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(required=['department_name']) }} as _quarantine_reason
    from source
)

select * from renamed
