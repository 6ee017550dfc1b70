{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='transaction_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

-- an incremental build re-derives only the transactions with a new version
with latest_transaction as (
    {{ latest_passing_versions(
        changed_members(ref('int_transaction__versions'), 'transaction_id'), 'transaction_id'
    ) }}
)

select
    latest_transaction.transaction_id,
    coalesce(latest_transaction.transaction_type, '')::varchar as transaction_type,
    latest_transaction.sales_order_id,
    latest_transaction.purchase_order_id
from latest_transaction
