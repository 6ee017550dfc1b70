{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail'
    )
}}

-- One row per source row version. The record id is the version id assigned once in
-- int_purchase_order__versions, so it never changes, even if this table is rebuilt. An
-- incremental build reads only versions with a larger id than any already here, and the
-- anti-join on the primary key makes a re-run add nothing.
with versions as (
    select int_versions.*
    from {{ ref('int_purchase_order__versions') }} as int_versions
    {% if is_incremental() %}
        where
            int_versions.version_id > (
                select coalesce(max(existing.purchase_record_id), 0) from {{ this }} as existing
            )
            and not exists (
                select 1 from {{ this }} as existing
                where existing.purchase_record_id = int_versions.version_id
            )
    {% endif %}
)

select
    versions.version_id as purchase_record_id,
    versions.purchase_order_id,
    versions.created_date,
    versions.created_time,
    versions.last_updated_date,
    versions.last_updated_time,
    versions.staff_id,
    versions.counterparty_id,
    versions.item_code,
    versions.item_quantity,
    versions.item_unit_price,
    versions.currency_id,
    versions.agreed_delivery_date,
    versions.agreed_payment_date,
    versions.agreed_delivery_location_id
from versions
