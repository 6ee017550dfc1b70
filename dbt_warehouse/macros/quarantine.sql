{#- Why a source row version is quarantined, or NULL when it passes every rule: one text naming
    each broken rule (and the offending value), `; `-separated. Never raises: every rule is a
    CASE on the raw value, so one bad row cannot fail the staging view and freeze the facts.
    The rules (docs/WAREHOUSE.md, "Quarantine"):
    - `required`: the column is NULL;
    - `dates`: the text is not a real `YYYY-MM-DD` date (NULL included; see macro iso_date);
    - `not_negative`: the number is below zero. -#}
{% macro quarantine_reason(required=[], dates=[], not_negative=[]) -%}
    nullif(
        concat_ws(
            '; '
            {%- for column in required %},
                case when {{ column }} is null then '{{ column }} is NULL' end
            {%- endfor %}
            {%- for column in dates %},
                case
                    when {{ iso_date(column) }} is null
                        then
                            '{{ column }} is not a YYYY-MM-DD date: '
                            || coalesce(quote_literal({{ column }}), 'NULL')
                end
            {%- endfor %}
            {%- for column in not_negative %},
                case
                    when {{ column }} < 0 then '{{ column }} is negative: ' || {{ column }}::text
                end
            {%- endfor %}
        ),
        ''
    )
{%- endmacro %}

{#- The member a dimension holds: the latest version that passes every quarantine rule, or,
    for a member with no passing version yet, its latest version (the dimension then shows the
    empty value '' for what is missing, so facts referring to it still join). A correction is
    a newer passing version, so it replaces both. -#}
{% macro latest_passing_versions(relation, key_column) -%}
    select distinct on ({{ key_column }}) *
    from {{ relation }}
    order by
        {{ key_column }} asc,
        (_quarantine_reason is null) desc,
        last_updated desc,
        version_id desc
{%- endmacro %}
