{{ config(materialized='view') }}

-- Every deletion of a dimension's source row. The member stays in its dimension (facts refer
-- to it); this lists when it went, and when the key came back, if it did.
{% set members = [
    ('address', 'address_id'),
    ('counterparty', 'counterparty_id'),
    ('currency', 'currency_id'),
    ('department', 'department_id'),
    ('design', 'design_id'),
    ('payment_type', 'payment_type_id'),
    ('staff', 'staff_id'),
    ('transaction', 'transaction_id'),
] %}

with member_deletions as (
    select
        deletions.deletion_id,
        deletions.source_table,
        deletions.mart_name,
        deletions.source_key,
        deletions.last_updated,
        deletions.deleted_at
    from {{ ref('deletions') }} as deletions
    -- every table but the three facts' sources
    where deletions.source_table not in ('sales_order', 'purchase_order', 'payment')
),

-- the versions of the deleted keys (found by each versions model's key index)
later_versions as (
    {% for entity, key in members %}
        select
            '{{ entity }}'::varchar as source_table,
            versions.{{ key }} as source_key,
            versions.last_updated
        from {{ ref('int_' ~ entity ~ '__versions') }} as versions
        where
            versions.{{ key }} in (
                select member_deletions.source_key
                from member_deletions
                where member_deletions.source_table = '{{ entity }}'
            )
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    member_deletions.mart_name as dimension,
    member_deletions.source_table,
    member_deletions.source_key as member_key,
    member_deletions.deletion_id,
    member_deletions.last_updated,
    member_deletions.deleted_at,
    (
        select min(later_versions.last_updated)
        from later_versions
        where
            later_versions.source_table = member_deletions.source_table
            and later_versions.source_key = member_deletions.source_key
            and later_versions.last_updated > {{ deletion_reach('member_deletions') }}
    ) as reinserted_at
from member_deletions
