{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail'
    )
}}

-- One row per source row version. The record id is the version id assigned once in
-- int_payment__versions, so it never changes, even if this table is rebuilt. An
-- incremental build reads only versions with a larger id than any already here, and the
-- anti-join on the primary key makes a re-run add nothing.
with versions as (
    select int_versions.*
    from {{ ref('int_payment__versions') }} as int_versions
    {% if is_incremental() %}
        where
            int_versions.version_id > (
                select coalesce(max(existing.payment_record_id), 0) from {{ this }} as existing
            )
            and not exists (
                select 1 from {{ this }} as existing
                where existing.payment_record_id = int_versions.version_id
            )
    {% endif %}
)

select
    versions.version_id as payment_record_id,
    versions.payment_id,
    versions.created_date,
    versions.created_time,
    versions.last_updated_date,
    versions.last_updated_time,
    versions.transaction_id,
    versions.counterparty_id,
    versions.payment_amount,
    versions.currency_id,
    versions.payment_type_id,
    versions.paid,
    versions.payment_date
from versions
