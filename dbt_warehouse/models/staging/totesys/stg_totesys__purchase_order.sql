with source as (
    select * from {{ source('totesys', 'purchase_order') }}
),

renamed as (
    select
        purchase_order_id::integer as purchase_order_id,
        created_at,
        created_at::date as created_date,
        created_at::time as created_time,
        last_updated,
        last_updated::date as last_updated_date,
        last_updated::time as last_updated_time,
        staff_id::integer as staff_id,
        counterparty_id::integer as counterparty_id,
        item_code::varchar as item_code,
        item_quantity::integer as item_quantity,
        item_unit_price::numeric(10, 2) as item_unit_price,
        currency_id::integer as currency_id,
        {{ iso_date('agreed_delivery_date') }} as agreed_delivery_date,
        {{ iso_date('agreed_payment_date') }} as agreed_payment_date,
        agreed_delivery_location_id::integer as agreed_delivery_location_id,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else it stays out of the facts
        {{ quarantine_reason(
            required=[
                'created_at', 'staff_id', 'counterparty_id', 'item_code', 'item_quantity',
                'item_unit_price', 'currency_id', 'agreed_delivery_location_id'
            ],
            dates=['agreed_delivery_date', 'agreed_payment_date'],
            not_negative=['item_quantity', 'item_unit_price']
        ) }} as _quarantine_reason
    from source
)

select * from renamed
