with source as (
    select * from {{ source('totesys', 'sales_order') }}
),

renamed as (
    select
        sales_order_id::integer as sales_order_id,
        created_at,
        created_at::date as created_date,
        created_at::time as created_time,
        last_updated,
        last_updated::date as last_updated_date,
        last_updated::time as last_updated_time,
        design_id::integer as design_id,
        staff_id::integer as staff_id,
        counterparty_id::integer as counterparty_id,
        units_sold::integer as units_sold,
        unit_price::numeric(10, 2) as unit_price,
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
                'created_at', 'design_id', 'staff_id', 'counterparty_id', 'units_sold',
                'unit_price', 'currency_id', 'agreed_delivery_location_id'
            ],
            dates=['agreed_payment_date', 'agreed_delivery_date'],
            not_negative=['units_sold', 'unit_price']
        ) }} as _quarantine_reason
    from source
)

select * from renamed
