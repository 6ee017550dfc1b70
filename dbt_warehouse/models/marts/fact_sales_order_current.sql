{{ config(materialized='view') }}

-- The current state: the latest version of every sales_order (see doc fact_sales_order).
select distinct on (fact.sales_order_id)
    fact.sales_record_id,
    fact.sales_order_id,
    fact.created_date,
    fact.created_time,
    fact.last_updated_date,
    fact.last_updated_time,
    fact.sales_staff_id,
    fact.counterparty_id,
    fact.units_sold,
    fact.unit_price,
    fact.currency_id,
    fact.design_id,
    fact.agreed_payment_date,
    fact.agreed_delivery_date,
    fact.agreed_delivery_location_id
from {{ ref('fact_sales_order') }} as fact
order by
    fact.sales_order_id asc,
    fact.last_updated_date desc,
    fact.last_updated_time desc,
    fact.sales_record_id desc
