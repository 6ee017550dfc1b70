{{ config(materialized='view') }}

-- Every version of every sales_order with the time it was valid, and whether a deletion ended
-- it (macro fact_history; see doc fact_sales_order_history).
with history as (
    {{ fact_history(
        ref('fact_sales_order'),
        ref('int_sales_order__versions'),
        'sales_order',
        'sales_order_id',
        'sales_record_id'
    ) }}
)

select
    history.sales_record_id,
    history.sales_order_id,
    history.created_date,
    history.created_time,
    history.last_updated_date,
    history.last_updated_time,
    history.sales_staff_id,
    history.counterparty_id,
    history.units_sold,
    history.unit_price,
    history.currency_id,
    history.design_id,
    history.agreed_payment_date,
    history.agreed_delivery_date,
    history.agreed_delivery_location_id,
    history.valid_from,
    history.valid_to,
    history.is_deleted
from history
