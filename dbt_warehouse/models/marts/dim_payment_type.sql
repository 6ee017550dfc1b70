{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='payment_type_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

with latest_payment_type as (
    {{ latest_passing_versions(ref('int_payment_type__versions'), 'payment_type_id') }}
)

select
    latest_payment_type.payment_type_id,
    coalesce(latest_payment_type.payment_type_name, '')::varchar as payment_type_name
from latest_payment_type
