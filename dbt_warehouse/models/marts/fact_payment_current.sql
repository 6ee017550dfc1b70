{{ config(materialized='view') }}

-- The current state: the latest version of every payment still in the source (see doc
-- fact_payment_current). A deleted key is left out; a key inserted again after its deletion
-- is back with its new version (macro not_deleted).
with latest as (
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
)

select
    latest.payment_record_id,
    latest.payment_id,
    latest.created_date,
    latest.created_time,
    latest.last_updated_date,
    latest.last_updated_time,
    latest.transaction_id,
    latest.counterparty_id,
    latest.payment_amount,
    latest.currency_id,
    latest.payment_type_id,
    latest.paid,
    latest.payment_date
from latest
where
    {{ not_deleted(
        'payment', 'latest.payment_id', 'latest.last_updated_date + latest.last_updated_time'
    ) }}
