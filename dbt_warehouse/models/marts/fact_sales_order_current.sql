{{ config(materialized='view') }}

-- The current state: the latest version of every sales_order still in the source (see doc
-- fact_sales_order_current). A deleted key is left out; a key inserted again after its deletion
-- is back with its new version (macro not_deleted).
with latest as (
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
)

select
    latest.sales_record_id,
    latest.sales_order_id,
    latest.created_date,
    latest.created_time,
    latest.last_updated_date,
    latest.last_updated_time,
    latest.sales_staff_id,
    latest.counterparty_id,
    latest.units_sold,
    latest.unit_price,
    latest.currency_id,
    latest.design_id,
    latest.agreed_payment_date,
    latest.agreed_delivery_date,
    latest.agreed_delivery_location_id
from latest
where
    {{ not_deleted(
        'sales_order', 'latest.sales_order_id', 'latest.last_updated_date + latest.last_updated_time'
    ) }}
