{{ config(materialized='view') }}

-- The current state: the latest version of every payment (see doc fact_sales_order).
select distinct on (fact.payment_id)
    fact.payment_record_id,
    fact.payment_id,
    fact.created_date,
    fact.created_time,
    fact.last_updated_date,
    fact.last_updated_time,
    fact.transaction_id,
    fact.counterparty_id,
    fact.payment_amount,
    fact.currency_id,
    fact.payment_type_id,
    fact.paid,
    fact.payment_date
from {{ ref('fact_payment') }} as fact
order by
    fact.payment_id asc,
    fact.last_updated_date desc,
    fact.last_updated_time desc,
    fact.payment_record_id desc
