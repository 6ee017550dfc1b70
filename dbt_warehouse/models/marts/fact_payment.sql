{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        post_hook=[
            "{{ create_version_index('payment_id') }}",
        ]
    )
}}

-- One row per source row version. The record id is the version id assigned once in
-- int_payment__versions, so it never changes, even if this table is rebuilt. An
-- incremental build reads only the versions it has not loaded (macro new_fact_versions).
with versions as (
    {{ new_fact_versions(ref('int_payment__versions'), 'payment_record_id') }}
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
