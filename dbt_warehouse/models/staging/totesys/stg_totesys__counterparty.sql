with source as (
    select * from {{ source('totesys', 'counterparty') }}
),

renamed as (
    select
        counterparty_id::integer as counterparty_id,
        counterparty_legal_name::varchar as counterparty_legal_name,
        legal_address_id::integer as legal_address_id,
        commercial_contact::varchar as commercial_contact,
        delivery_contact::varchar as delivery_contact,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(required=['counterparty_legal_name']) }} as _quarantine_reason
    from source
)

select * from renamed
