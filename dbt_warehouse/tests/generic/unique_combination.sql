{#- A composite key: no two rows share the same values of `columns` (dbt_utils'
    unique_combination_of_columns, which is not reachable here). Returns the duplicated keys. -#}
{% test unique_combination(model, columns) %}
    select
        {{ columns | join(', ') }},
        count(*) as copies
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
