{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail'
    )
}}

-- One row per source row version. The record id is the version id assigned once in
-- int_sales_order__versions, so it never changes, even if this table is rebuilt. An
-- incremental build reads only versions with a larger id than any already here, and the
-- anti-join on the primary key makes a re-run add nothing.
with versions as (
    select int_versions.*
    from {{ ref('int_sales_order__versions') }} as int_versions
    {% if is_incremental() %}
        where
            int_versions.version_id > (
                select coalesce(max(existing.sales_record_id), 0) from {{ this }} as existing
            )
            and not exists (
                select 1 from {{ this }} as existing
                where existing.sales_record_id = int_versions.version_id
            )
    {% endif %}
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
