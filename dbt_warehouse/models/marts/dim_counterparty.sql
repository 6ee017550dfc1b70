{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='counterparty_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

-- Counterparty joined to its legal address; a moved address shows on the next build.
with latest_counterparty as (
    {{ latest_passing_versions(ref('int_counterparty__versions'), 'counterparty_id') }}
),

latest_address as (
    {{ latest_passing_versions(ref('int_address__versions'), 'address_id') }}
)

select
    latest_counterparty.counterparty_id,
    coalesce(latest_counterparty.counterparty_legal_name, '')::varchar as counterparty_legal_name,
    coalesce(latest_address.address_line_1, '')::varchar as counterparty_legal_address_line_1,
    latest_address.address_line_2 as counterparty_legal_address_line_2,
    latest_address.district as counterparty_legal_district,
    coalesce(latest_address.city, '')::varchar as counterparty_legal_city,
    coalesce(latest_address.postal_code, '')::varchar as counterparty_legal_postal_code,
    coalesce(latest_address.country, '')::varchar as counterparty_legal_country,
    coalesce(latest_address.phone, '')::varchar as counterparty_legal_phone_number
from latest_counterparty
left join latest_address
    on latest_counterparty.legal_address_id = latest_address.address_id
