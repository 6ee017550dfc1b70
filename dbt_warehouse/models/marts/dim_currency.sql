{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='currency_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

-- Names come from the ISO 4217 seed, so a currency added to the source is named without a
-- code change. A code missing from the list keeps its row with the empty-member name ''
-- and is flagged by the has_members_in test on currency_code.
with latest_currency as (
    {{ latest_passing_versions(ref('int_currency__versions'), 'currency_id') }}
),

iso_4217 as (
    select * from {{ ref('iso_4217_currencies') }}
)

select
    latest_currency.currency_id,
    coalesce(latest_currency.currency_code, '')::varchar as currency_code,
    coalesce(iso_4217.name, '')::varchar as currency_name
from latest_currency
left join iso_4217
    on upper(latest_currency.currency_code) = iso_4217.code
