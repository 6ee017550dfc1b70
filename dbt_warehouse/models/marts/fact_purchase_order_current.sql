{{ config(materialized='view') }}

-- The current state: the latest version of every purchase_order (see doc fact_sales_order).
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
