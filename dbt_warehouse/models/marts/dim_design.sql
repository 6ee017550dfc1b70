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
    {{ latest_versions(ref('int_design__versions'), 'design_id') }}
)

select
    latest_design.design_id,
    latest_design.design_name,
    latest_design.file_location,
    latest_design.file_name
from latest_design
