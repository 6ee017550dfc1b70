with source as (
    select * from {{ source('totesys', 'payment_type') }}
),

renamed as (
    select
        payment_type_id::integer as payment_type_id,
        -- the enum label, kept as it is (SALES_RECEIPT ...)
        payment_type_name::varchar as payment_type_name,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(required=['payment_type_name']) }} as _quarantine_reason
    from source
)

select * from renamed
