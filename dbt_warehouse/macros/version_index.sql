{#- Brings an `int_<entity>__versions` table built before versions carried `_row_hash` to the
    shape it has now, once, without a full refresh (refused: it would renumber the versions).

    Such a table has a unique index on (key, last_updated), which would reject a change that
    did not move last_updated (a cascade, a manual fix) as a duplicate, and versions whose
    `_row_hash` is NULL, which the anti-join of dedupe_versions would take for any content of
    the same (key, last_updated). For each unique index the model configures as
    (key, last_updated, _row_hash), when the table still has the one on (key, last_updated):
    the column is added, filled in for every version with the hash macro row_hash gives its
    staging row (the same columns, so a version delivered again unchanged still matches), the
    old index dropped and the new one created. Run as a pre-hook, inside the model's
    transaction: it all happens with the build, or not at all. A table in the new shape only
    costs one catalog lookup. -#}
{% macro converge_version_index() %}
    {%- if not execute or not is_incremental() -%}
        {{ return('') }}
    {%- endif -%}
    {%- set legacy_names = [] -%}
    {%- for index in config.get('indexes') or [] -%}
        {%- set columns = index.get('columns') or [] -%}
        {%- if index.get('unique') and columns[-2:] == ['last_updated', '_row_hash'] -%}
            {%- for legacy in legacy_unique_indexes(this, columns[:-1]) -%}
                {%- do legacy_names.append(legacy) -%}
            {%- endfor -%}
            {%- if legacy_names -%}
                {%- set migration -%}
                    alter table {{ this }} add column if not exists _row_hash text;
                    update {{ this }} as existing
                    set _row_hash = md5(
                        (
                            to_jsonb(existing)
                            - array[
                                'version_id', '_row_hash', '_manifest_seq', '_run_id',
                                '_source_file', '_loaded_at', '_quarantine_reason'
                            ]
                        )::text
                    )
                    where existing._row_hash is null;
                    {% for name in legacy_names -%}
                        drop index {{ adapter.quote(this.schema) }}.{{ adapter.quote(name) }};
                    {% endfor -%}
                    create unique index if not exists
                        {{ adapter.quote(this.identifier ~ '__version_key') }}
                    on {{ this }} ({{ columns | join(', ') }})
                {%- endset -%}
                {{ return(migration) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}

{#- The names of `relation`'s unique indexes on exactly `columns`, in that order. -#}
{% macro legacy_unique_indexes(relation, columns) %}
    {%- set found = run_query(
        "select index_class.relname::text"
        ~ " from pg_catalog.pg_index as index_meta"
        ~ " join pg_catalog.pg_class as index_class on index_class.oid = index_meta.indexrelid"
        ~ " where index_meta.indrelid = '" ~ relation ~ "'::regclass"
        ~ " and index_meta.indisunique"
        ~ " and array("
        ~ "  select attribute.attname::text"
        ~ "  from unnest(index_meta.indkey::int2[]) with ordinality as key_column (attnum, position)"
        ~ "  join pg_catalog.pg_attribute as attribute"
        ~ "   on attribute.attrelid = index_meta.indrelid and attribute.attnum = key_column.attnum"
        ~ "  order by key_column.position"
        ~ " ) = array['" ~ (columns | join("', '")) ~ "']::text[]"
    ) -%}
    {{ return(found.columns[0].values() | list) }}
{% endmacro %}
