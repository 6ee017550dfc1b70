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
    {{ latest_passing_versions(ref('int_address__versions'), 'address_id') }}
)

select
    latest_address.address_id as location_id,
    coalesce(latest_address.address_line_1, '')::varchar as address_line_1,
    latest_address.address_line_2,
    latest_address.district,
    coalesce(latest_address.city, '')::varchar as city,
    coalesce(latest_address.postal_code, '')::varchar as postal_code,
    coalesce(latest_address.country, '')::varchar as country,
    coalesce(latest_address.phone, '')::varchar as phone
from latest_address
