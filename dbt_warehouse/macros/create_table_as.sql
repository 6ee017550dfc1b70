{#- dbt-postgres's `create table as` (dbt-postgres 1.x, adapters.sql), with one change for a
    table with an enforced contract: its keys (primary key, unique, foreign keys) are added by
    `alter table` once the rows are in, instead of being declared before the insert.

    The constraints are the same, with the same names (Postgres names `<table>_pkey`,
    `<table>_<column>_fkey` alike either way), and every row is checked against them; but a
    foreign key added to a filled table is validated by one join, where a declared one fires a
    trigger per row and key: on a first build at `--scale 100`, 4.3 million fact rows times
    eight foreign keys, the larger part of the whole cycle. Later incremental inserts go into
    the table as it is, constraints and all. Columns' `not null` and `check` stay inline.
-#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
  {%- set unlogged = config.get('unlogged', default=false) -%}
  {%- set sql_header = config.get('sql_header', none) -%}
  {%- set contract_config = config.get('contract') -%}
  {%- set keys = ['primary_key', 'unique', 'foreign_key'] -%}

  {{ sql_header if sql_header is not none }}

  create {% if temporary -%}
    temporary
  {%- elif unlogged -%}
    unlogged
  {%- endif %} table {{ relation }}
  {% if contract_config.enforced %}
    {{ get_assert_columns_equivalent(sql) }}
  {% endif -%}
  {% if contract_config.enforced and (not temporary) -%}
    {%- set deferred = [] -%}
    {%- set columns = {} -%}
    {%- for name, column in model['columns'].items() -%}
      {%- set column_name = column['name'] -%}
      {%- if column.get('quote') -%}
        {%- set column_name = adapter.quote(column_name) -%}
      {%- endif -%}
      {%- set inline = [] -%}
      {%- for constraint in column.get('constraints') or [] -%}
        {%- if constraint['type'] in keys -%}
          {%- do deferred.append(dict(constraint, columns=[column_name])) -%}
        {%- else -%}
          {%- do inline.append(constraint) -%}
        {%- endif -%}
      {%- endfor -%}
      {%- do columns.update({name: dict(column, constraints=inline)}) -%}
    {%- endfor -%}
    {%- set model_inline = [] -%}
    {%- for constraint in model['constraints'] or [] -%}
      {%- if constraint['type'] in keys -%}
        {%- do deferred.append(constraint) -%}
      {%- else -%}
        {%- do model_inline.append(constraint) -%}
      {%- endif -%}
    {%- endfor -%}
    {%- set rendered_columns = adapter.render_raw_columns_constraints(raw_columns=columns) -%}
    {%- set rendered_model = adapter.render_raw_model_constraints(raw_constraints=model_inline) -%}
    (
    {% for c in rendered_columns -%}
      {{ c }}{{ "," if not loop.last or rendered_model }}
    {% endfor %}
    {% for c in rendered_model -%}
      {{ c }}{{ "," if not loop.last }}
    {% endfor -%}
    ) ;
    insert into {{ relation }} (
      {{ adapter.dispatch('get_column_names', 'dbt')() }}
    )
    {%- set sql = get_select_subquery(sql) %}
    (
      {{ sql }}
    );
    {% for c in adapter.render_raw_model_constraints(raw_constraints=deferred) -%}
      alter table {{ relation }} add {{ c }};
    {% endfor %}
  {%- else %}
    as
    (
      {{ sql }}
    );
  {%- endif %}
{%- endmacro %}
