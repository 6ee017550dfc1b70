with source as (
    select * from {{ source('totesys', 'staff') }}
),

renamed as (
    select
        staff_id::integer as staff_id,
        first_name::varchar as first_name,
        last_name::varchar as last_name,
        department_id::integer as department_id,
        email_address::varchar as email_address,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(
            required=['first_name', 'last_name', 'email_address']
        ) }} as _quarantine_reason
    from source
)

select * from renamed
