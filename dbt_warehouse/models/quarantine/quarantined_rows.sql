{{ config(materialized='table') }}

-- Every source row version a quarantine rule kept out of the marts, with why, where it came
-- from, and whether a later version of the same row passed (then the marts hold that one). A
-- fact leaves the version out; a dimension keeps the member's last passing version instead.
{% set entities = [
    ('sales_order', 'sales_order_id'),
    ('purchase_order', 'purchase_order_id'),
    ('payment', 'payment_id'),
    ('address', 'address_id'),
    ('counterparty', 'counterparty_id'),
    ('currency', 'currency_id'),
    ('department', 'department_id'),
    ('design', 'design_id'),
    ('payment_type', 'payment_type_id'),
    ('staff', 'staff_id'),
    ('transaction', 'transaction_id'),
] %}

with quarantined as (
    {% for entity, key in entities %}
        select
            '{{ entity }}'::varchar as source_table,
            bad.{{ key }} as source_key,
            bad.last_updated,
            bad.version_id,
            bad._quarantine_reason::varchar as reason,
            bad._manifest_seq as manifest_seq,
            bad._run_id::varchar as run_id,
            bad._source_file::varchar as source_file,
            bad._loaded_at as loaded_at,
            (
                select min(good.version_id)
                from {{ ref('int_' ~ entity ~ '__versions') }} as good
                where
                    good.{{ key }} = bad.{{ key }}
                    and good.last_updated > bad.last_updated
                    and good._quarantine_reason is null
            ) as resolved_by_version_id
        from {{ ref('int_' ~ entity ~ '__versions') }} as bad
        where bad._quarantine_reason is not null
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
)

select
    quarantined.source_table,
    quarantined.source_key,
    quarantined.last_updated,
    quarantined.version_id,
    quarantined.reason,
    quarantined.manifest_seq,
    quarantined.run_id,
    quarantined.source_file,
    quarantined.loaded_at,
    quarantined.resolved_by_version_id,
    quarantined.resolved_by_version_id is not null as resolved
from quarantined
