{#- Every non-null value of `column_name` exists as `field` in `to` (a relationships test that
    names the missing members). Used with severity warn where a missing joined member must not
    stop facts from loading (spec: the gap is caught by tests, not by losing rows). `model` is
    wrapped: a cycle's build renders it as an aliased subquery of its new rows
    (macros/build_state.sql, get_where_subquery), which takes no second alias. -#}
{% test has_members_in(model, column_name, to, field) %}
    with child as (
        select * from {{ model }}
    )

    select distinct child.{{ column_name }} as missing_member
    from child
    where
        child.{{ column_name }} is not null
        and not exists (
            select 1 from {{ to }} as parent
            where parent.{{ field }} = child.{{ column_name }}
        )
{% endtest %}
