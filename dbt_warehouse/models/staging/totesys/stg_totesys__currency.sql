with source as (
    select * from {{ source('totesys', 'currency') }}
),

renamed as (
    select
        currency_id::integer as currency_id,
        currency_code::varchar as currency_code,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(required=['currency_code']) }} as _quarantine_reason
    from source
)

select * from renamed
