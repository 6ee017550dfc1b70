with source as (
    select * from {{ source('totesys', 'transaction') }}
),

renamed as (
    select
        transaction_id::integer as transaction_id,
        -- the enum label, kept as it is (SALE, PURCHASE)
        transaction_type::varchar as transaction_type,
        sales_order_id::integer as sales_order_id,
        purchase_order_id::integer as purchase_order_id,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else its dimension keeps the last good one
        {{ quarantine_reason(required=['transaction_type']) }} as _quarantine_reason
    from source
)

select * from renamed
