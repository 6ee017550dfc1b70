{#- Fails with one row per value that is not a real `YYYY-MM-DD` calendar date, naming the row
    by its key, its raw text and the file it came from, so bad input is loud, never a NULL. -#}
{% test is_iso_date(model, column_name, key_column) %}
    select
        {{ key_column }} as row_key,
        {{ column_name }} as bad_value,
        _manifest_seq,
        _source_file
    from {{ model }}
    where {{ iso_date(column_name) }} is null
{% endtest %}
