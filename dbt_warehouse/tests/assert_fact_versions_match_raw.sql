-- Every distinct (key, last_updated) version in the raw layer appears in its fact once per
-- distinct content (once, unless a change that did not move last_updated, a cascade or a
-- manual fix, made more versions of it: as many as its intermediate model holds, which keeps
-- one per content), and the facts hold no version raw never delivered. Raw rows newer than
-- the last manifest the intermediate models processed (a load landing mid-build) are left for
-- the next build. A
-- quarantined version (listed in quarantine.quarantined_rows) is expected in no fact: should
-- one land there, it shows here as a fact row raw does not account for.
--
-- In a build with a since_seq (macro totes_since_seq: the manifests above the last successful
-- build's), the same two checks cover what that build can have changed: each raw version of
-- those manifests is in its fact exactly once (its copies counted over the whole fact), and
-- each fact row added from them has its raw version. `dbt test` (since_seq 0) checks all of raw.
{{ config(severity='error') }}

{% set facts = [
    ('sales_order', 'sales_order_id', 'fact_sales_order', 'sales_record_id'),
    ('purchase_order', 'purchase_order_id', 'fact_purchase_order', 'purchase_record_id'),
    ('payment', 'payment_id', 'fact_payment', 'payment_record_id'),
] %}
{% set since = totes_since_seq() %}

{% for entity, key, fact, record_id in facts %}
    (
        with raw_delivered as (
            select distinct
                raw_rows.{{ key }} as source_key,
                raw_rows.last_updated
            from {{ source('totesys', entity) }} as raw_rows
            where
                raw_rows._manifest_seq <= (
                    select coalesce(max(processed._manifest_seq), 0)
                    from {{ ref('int_' ~ entity ~ '__versions') }} as processed
                )
                {% if since > 0 %}and raw_rows._manifest_seq > {{ since }}{% endif %}
                and not exists (
                    select 1 from {{ ref('quarantined_rows') }} as quarantined
                    where
                        quarantined.source_table = '{{ entity }}'
                        and quarantined.source_key = raw_rows.{{ key }}
                        and quarantined.last_updated = raw_rows.last_updated
                )
        ),

        -- how many copies the fact must hold: one per passing content of the version (at
        -- least one: a version the intermediate model lost still counts)
        {% if since > 0 %}
            raw_versions as (
                select
                    raw_delivered.source_key,
                    raw_delivered.last_updated,
                    greatest(1, coalesce(passing_contents.contents, 0)) as expected_copies
                from raw_delivered
                -- a few versions: each found by the versions model's (key, last_updated) index
                left join lateral (
                    select count(*) as contents
                    from {{ ref('int_' ~ entity ~ '__versions') }} as int_versions
                    where
                        int_versions.{{ key }} = raw_delivered.source_key
                        and int_versions.last_updated = raw_delivered.last_updated
                        and int_versions._quarantine_reason is null
                ) as passing_contents on true
            ),
        {% else %}
            passing_contents as (
                select
                    int_versions.{{ key }} as source_key,
                    int_versions.last_updated,
                    count(*) as contents
                from {{ ref('int_' ~ entity ~ '__versions') }} as int_versions
                where int_versions._quarantine_reason is null
                group by int_versions.{{ key }}, int_versions.last_updated
            ),

            raw_versions as (
                select
                    raw_delivered.source_key,
                    raw_delivered.last_updated,
                    greatest(1, coalesce(passing_contents.contents, 0)) as expected_copies
                from raw_delivered
                left join passing_contents
                    on
                        raw_delivered.source_key = passing_contents.source_key
                        and raw_delivered.last_updated = passing_contents.last_updated
            ),
        {% endif %}

        fact_versions as (
            select
                fact_rows.{{ key }} as source_key,
                fact_rows.last_updated_date + fact_rows.last_updated_time as last_updated,
                count(*) as copies
            from {{ ref(fact) }} as fact_rows
            {% if since > 0 %}
                -- every copy of those keys, found by the fact's (key, last_updated) index
                where fact_rows.{{ key }} in (select raw_versions.source_key from raw_versions)
            {% endif %}
            group by fact_rows.{{ key }}, fact_rows.last_updated_date, fact_rows.last_updated_time
        )

        select
            '{{ fact }}' as fact_name,
            coalesce(raw_versions.source_key, fact_versions.source_key) as source_key,
            coalesce(raw_versions.last_updated, fact_versions.last_updated) as last_updated,
            coalesce(fact_versions.copies, 0) as copies_in_fact,
            raw_versions.source_key is not null as in_raw
        from raw_versions
        {% if since > 0 %}
            -- only versions this build can have added: an older version of a key here is in
            -- raw below since_seq, which this build does not read
            left join fact_versions
                on
                    raw_versions.source_key = fact_versions.source_key
                    and raw_versions.last_updated = fact_versions.last_updated
            where coalesce(fact_versions.copies, 0) <> raw_versions.expected_copies
            union all
            select
                '{{ fact }}' as fact_name,
                new_rows.{{ key }} as source_key,
                new_rows.last_updated_date + new_rows.last_updated_time as last_updated,
                1 as copies_in_fact,
                false as in_raw
            from {{ ref(fact) }} as new_rows
            where
                new_rows.{{ record_id }} in (
                    select new_versions.version_id
                    from {{ ref('int_' ~ entity ~ '__versions') }} as new_versions
                    where new_versions._manifest_seq > {{ since }}
                )
                and not exists (
                    select 1 from raw_versions
                    where
                        raw_versions.source_key = new_rows.{{ key }}
                        and raw_versions.last_updated
                        = new_rows.last_updated_date + new_rows.last_updated_time
                )
        {% else %}
            full outer join fact_versions
                on
                    raw_versions.source_key = fact_versions.source_key
                    and raw_versions.last_updated = fact_versions.last_updated
            where
                raw_versions.source_key is null
                or coalesce(fact_versions.copies, 0) <> raw_versions.expected_copies
        {% endif %}
    )
    {% if not loop.last %}union all{% endif %}
{% endfor %}
