with source as (
    select * from {{ source('totesys', 'payment') }}
),

renamed as (
    select
        payment_id::integer as payment_id,
        created_at,
        created_at::date as created_date,
        created_at::time as created_time,
        last_updated,
        last_updated::date as last_updated_date,
        last_updated::time as last_updated_time,
        transaction_id::integer as transaction_id,
        counterparty_id::integer as counterparty_id,
        payment_amount::numeric(10, 2) as payment_amount,
        currency_id::integer as currency_id,
        payment_type_id::integer as payment_type_id,
        paid::boolean as paid,
        {{ iso_date('payment_date') }} as payment_date,
        company_ac_number::integer as company_ac_number,
        counterparty_ac_number::integer as counterparty_ac_number,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at,
        -- NULL when the version passes every rule; else it stays out of the facts
        {{ quarantine_reason(
            required=[
                'created_at', 'transaction_id', 'counterparty_id', 'payment_amount',
                'currency_id', 'payment_type_id', 'paid'
            ],
            dates=['payment_date']
        ) }} as _quarantine_reason
    from source
)

select * from renamed
