{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='design_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

with latest_design as (
    {{ latest_passing_versions(ref('int_design__versions'), 'design_id') }}
)

select
    latest_design.design_id,
    coalesce(latest_design.design_name, '')::varchar as design_name,
    coalesce(latest_design.file_location, '')::varchar as file_location,
    coalesce(latest_design.file_name, '')::varchar as file_name
from latest_design
