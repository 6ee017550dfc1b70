{{ config(materialized='view') }}

-- Every version of every purchase_order with the time it was valid, and whether a deletion ended
-- it (macro fact_history; see doc fact_purchase_order_history).
with history as (
    {{ fact_history(
        ref('fact_purchase_order'),
        ref('int_purchase_order__versions'),
        'purchase_order',
        'purchase_order_id',
        'purchase_record_id'
    ) }}
)

select
    history.purchase_record_id,
    history.purchase_order_id,
    history.created_date,
    history.created_time,
    history.last_updated_date,
    history.last_updated_time,
    history.staff_id,
    history.counterparty_id,
    history.item_code,
    history.item_quantity,
    history.item_unit_price,
    history.currency_id,
    history.agreed_delivery_date,
    history.agreed_payment_date,
    history.agreed_delivery_location_id,
    history.valid_from,
    history.valid_to,
    history.is_deleted
from history
