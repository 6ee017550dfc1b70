{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['source_table', 'source_key']},
        ]
    )
}}

-- One row per deletion of a source row: what the *_current views leave out, what the history
-- views end and deleted_members lists. The id is the deletion id assigned once in
-- int_totesys__deletions; an incremental build adds only ids it does not hold yet.
with marts_of_tables (source_table, mart_name) as (
    values
    ('sales_order', 'fact_sales_order'),
    ('purchase_order', 'fact_purchase_order'),
    ('payment', 'fact_payment'),
    ('address', 'dim_location'),
    ('counterparty', 'dim_counterparty'),
    ('currency', 'dim_currency'),
    ('design', 'dim_design'),
    ('payment_type', 'dim_payment_type'),
    ('staff', 'dim_staff'),
    ('transaction', 'dim_transaction')
),

new_deletions as (
    select int_deletions.*
    from {{ ref('int_totesys__deletions') }} as int_deletions
    {% if is_incremental() %}
        where
            int_deletions.deletion_id > (
                select coalesce(max(existing.deletion_id), 0) from {{ this }} as existing
            )
            and not exists (
                select 1 from {{ this }} as existing
                where existing.deletion_id = int_deletions.deletion_id
            )
    {% endif %}
)

select
    new_deletions.deletion_id,
    new_deletions.source_table,
    -- department has no mart of its own: dim_staff carries its name and location
    marts_of_tables.mart_name::varchar as mart_name,
    new_deletions.source_key,
    new_deletions.last_updated,
    new_deletions.deleted_at
from new_deletions
left join marts_of_tables
    on new_deletions.source_table = marts_of_tables.source_table
