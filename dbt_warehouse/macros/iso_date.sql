{#- A text `YYYY-MM-DD` to a `date`, or NULL when the text is not a real calendar date.
    Nested CASEs fix the evaluation order, so nothing is cast before it is known to be valid.
    A NULL here is never silent: the macro `quarantine_reason` quarantines the row version (it
    stays out of the facts, listed in quarantine.quarantined_rows), and the warn-severity test
    `is_iso_date` on the raw text column names every offending row. -#}
{% macro iso_date(column) -%}
    case
        when {{ column }} ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
            then
                case
                    when
                        substr({{ column }}, 9, 2)::integer
                        <= extract(
                            day from (substr({{ column }}, 1, 8) || '01')::date
                            + interval '1 month'
                            - interval '1 day'
                        )
                        then {{ column }}::date
                end
    end
{%- endmacro %}
