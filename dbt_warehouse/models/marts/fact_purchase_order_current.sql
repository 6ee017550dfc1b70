{{ config(materialized='view') }}

-- The current state: the latest version of every purchase_order still in the source (see doc
-- fact_purchase_order_current). A deleted key is left out; a key inserted again after its deletion
-- is back with its new version (macro not_deleted).
with latest as (
    select distinct on (fact.purchase_order_id)
        fact.purchase_record_id,
        fact.purchase_order_id,
        fact.created_date,
        fact.created_time,
        fact.last_updated_date,
        fact.last_updated_time,
        fact.staff_id,
        fact.counterparty_id,
        fact.item_code,
        fact.item_quantity,
        fact.item_unit_price,
        fact.currency_id,
        fact.agreed_delivery_date,
        fact.agreed_payment_date,
        fact.agreed_delivery_location_id
    from {{ ref('fact_purchase_order') }} as fact
    order by
        fact.purchase_order_id asc,
        fact.last_updated_date desc,
        fact.last_updated_time desc,
        fact.purchase_record_id desc
)

select
    latest.purchase_record_id,
    latest.purchase_order_id,
    latest.created_date,
    latest.created_time,
    latest.last_updated_date,
    latest.last_updated_time,
    latest.staff_id,
    latest.counterparty_id,
    latest.item_code,
    latest.item_quantity,
    latest.item_unit_price,
    latest.currency_id,
    latest.agreed_delivery_date,
    latest.agreed_payment_date,
    latest.agreed_delivery_location_id
from latest
where
    {{ not_deleted(
        'purchase_order', 'latest.purchase_order_id', 'latest.last_updated_date + latest.last_updated_time'
    ) }}
