{{ config(materialized='view') }}

-- Every version of every payment with the time it was valid, and whether a deletion ended
-- it (macro fact_history; see doc fact_payment_history).
with history as (
    {{ fact_history(
        ref('fact_payment'),
        ref('int_payment__versions'),
        'payment',
        'payment_id',
        'payment_record_id'
    ) }}
)

select
    history.payment_record_id,
    history.payment_id,
    history.created_date,
    history.created_time,
    history.last_updated_date,
    history.last_updated_time,
    history.transaction_id,
    history.counterparty_id,
    history.payment_amount,
    history.currency_id,
    history.payment_type_id,
    history.paid,
    history.payment_date,
    history.valid_from,
    history.valid_to,
    history.is_deleted
from history
