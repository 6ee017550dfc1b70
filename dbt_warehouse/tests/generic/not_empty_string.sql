{#- Flags rows holding the empty-member value '' (a joined member missing: a department not
    arrived yet, a currency code absent from ISO 4217). Used with severity warn: the row is kept
    and the fact still loads; the gap is reported, never hidden. -#}
{% test not_empty_string(model, column_name) %}
    select *
    from {{ model }}
    where {{ column_name }} = ''
{% endtest %}
