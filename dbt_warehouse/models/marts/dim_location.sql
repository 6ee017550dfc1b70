{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='location_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

-- Latest version of every address, overwritten in place (merge) on each build.
with latest_address as (
    {{ latest_versions(ref('int_address__versions'), 'address_id') }}
)

select
    latest_address.address_id as location_id,
    latest_address.address_line_1,
    latest_address.address_line_2,
    latest_address.district,
    latest_address.city,
    latest_address.postal_code,
    latest_address.country,
    latest_address.phone
from latest_address
