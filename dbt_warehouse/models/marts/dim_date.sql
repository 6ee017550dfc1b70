{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='date_id',
        on_schema_change='fail',
        full_refresh=false
    )
}}

-- A calendar of whole years covering every date the fact sources reference (read from the
-- intermediate models, not the facts, so there is no cycle). Dates never change, so an
-- incremental build reads only the versions above since_seq (macro changed_versions) and adds
-- the days it does not hold yet.
with sales_order_versions as (
    select * from {{ changed_versions(ref('int_sales_order__versions')) }}
),

purchase_order_versions as (
    select * from {{ changed_versions(ref('int_purchase_order__versions')) }}
),

payment_versions as (
    select * from {{ changed_versions(ref('int_payment__versions')) }}
),

referenced as (
    select created_date as day from sales_order_versions
    union all
    select last_updated_date as day from sales_order_versions
    union all
    select agreed_payment_date as day from sales_order_versions
    union all
    select agreed_delivery_date as day from sales_order_versions
    union all
    select created_date as day from purchase_order_versions
    union all
    select last_updated_date as day from purchase_order_versions
    union all
    select agreed_payment_date as day from purchase_order_versions
    union all
    select agreed_delivery_date as day from purchase_order_versions
    union all
    select created_date as day from payment_versions
    union all
    select last_updated_date as day from payment_versions
    union all
    select payment_date as day from payment_versions
    {% if is_incremental() %}
        -- the calendar already held: new dates only ever widen it
        union all
        select min(existing.date_id) as day from {{ this }} as existing
        union all
        select max(existing.date_id) as day from {{ this }} as existing
    {% endif %}
),

bounds as (
    select
        date_trunc('year', min(referenced.day))::date as first_day,
        (date_trunc('year', max(referenced.day)) + interval '1 year - 1 day')::date as last_day
    from referenced
),

calendar as (
    select series.day::date as date_id
    from bounds
    cross join
        generate_series(bounds.first_day, bounds.last_day, interval '1 day') as series (day)
)

select
    calendar.date_id,
    extract(year from calendar.date_id)::integer as year,
    extract(month from calendar.date_id)::integer as month,
    extract(day from calendar.date_id)::integer as day,
    extract(isodow from calendar.date_id)::integer as day_of_week,
    trim(to_char(calendar.date_id, 'FMDay'))::varchar as day_name,
    trim(to_char(calendar.date_id, 'FMMonth'))::varchar as month_name,
    extract(quarter from calendar.date_id)::integer as quarter
from calendar
{% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as existing
        where existing.date_id = calendar.date_id
    )
{% endif %}
