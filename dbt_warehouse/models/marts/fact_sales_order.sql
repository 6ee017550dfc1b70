{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        post_hook=[
            "{{ create_version_index('sales_order_id') }}",
        ]
    )
}}

-- One row per source row version. The record id is the version id assigned once in
-- int_sales_order__versions, so it never changes, even if this table is rebuilt. An
-- incremental build reads only the versions it has not loaded (macro new_fact_versions).
with versions as (
    {{ new_fact_versions(ref('int_sales_order__versions'), 'sales_record_id') }}
)

select
    versions.version_id as sales_record_id,
    versions.sales_order_id,
    versions.created_date,
    versions.created_time,
    versions.last_updated_date,
    versions.last_updated_time,
    versions.staff_id as sales_staff_id,
    versions.counterparty_id,
    versions.units_sold,
    versions.unit_price,
    versions.currency_id,
    versions.design_id,
    versions.agreed_payment_date,
    versions.agreed_delivery_date,
    versions.agreed_delivery_location_id
from versions
