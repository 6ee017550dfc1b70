{#- Schemas are exactly the names the project documents (staging, intermediate, marts), never
    prefixed with the target schema: analysts and the loader rely on those names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
