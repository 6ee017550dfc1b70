{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='staff_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

-- Staff joined to their department. A department that has not arrived (or a NULL location)
-- gives the empty-member value '' rather than losing the staff member (see docs).
with latest_staff as (
    {{ latest_passing_versions(ref('int_staff__versions'), 'staff_id') }}
),

latest_department as (
    {{ latest_passing_versions(ref('int_department__versions'), 'department_id') }}
)

select
    latest_staff.staff_id,
    coalesce(latest_staff.first_name, '')::varchar as first_name,
    coalesce(latest_staff.last_name, '')::varchar as last_name,
    coalesce(latest_department.department_name, '')::varchar as department_name,
    coalesce(latest_department.location, '')::varchar as location,
    coalesce(latest_staff.email_address, '')::varchar as email_address
from latest_staff
left join latest_department
    on latest_staff.department_id = latest_department.department_id
