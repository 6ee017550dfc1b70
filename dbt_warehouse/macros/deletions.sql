{#- How deletions show in the marts (docs/WAREHOUSE.md, "Deletions"). A deletion in
    marts.deletions ends every version of its key with a `last_updated` up to and including the
    deleted version's (`deletions.last_updated`; when that is unknown, every version written
    before `deleted_at`). A version with a later `last_updated` is the key inserted again: a new
    history, after the deletion. -#}

{#- The bound a deletion ends versions up to (inclusive). -#}
{% macro deletion_reach(deletions_alias) -%}
    coalesce({{ deletions_alias }}.last_updated, {{ deletions_alias }}.deleted_at)
{%- endmacro %}

{#- True when no deletion of `source_table` ends the version of key `key_expr` written at
    `last_updated_expr`: the `*_current` views keep the latest version only if this holds. -#}
{% macro not_deleted(source_table, key_expr, last_updated_expr) -%}
    not exists (
        select 1
        from {{ ref('deletions') }} as deletions
        where
            deletions.source_table = '{{ source_table }}'
            and deletions.source_key = {{ key_expr }}
            and {{ deletion_reach('deletions') }} >= {{ last_updated_expr }}
    )
{%- endmacro %}

{#- Every version of a fact with its validity: the fact's columns, then
    - `valid_from`: the version's `last_updated`; for a change that did not move
      `last_updated` (a cascade, a manual fix, found by the extract's reconciliation) the time
      it was loaded (`_loaded_at` of its first delivery, UTC), when the warehouse learnt of it,
      never past the next version's `last_updated`;
    - `valid_to`: the next version's `valid_from`, or the deletion's `deleted_at` when a
      deletion ends this version (the key's last version before the deletion), NULL while
      current;
    - `is_deleted`: a deletion ended this version (then `valid_to` is when it was seen).
    Versions are ordered by (`last_updated`, record id), as the `*_current` views order them.
    A quarantined version is in no fact, so in no history either. -#}
{% macro fact_history(fact, versions, source_table, key_column, record_id) -%}
    with fact_versions as (
        select
            fact_rows.*,
            fact_rows.last_updated_date + fact_rows.last_updated_time as version_last_updated,
            (key_versions._loaded_at at time zone 'UTC')::timestamp(3) as version_loaded_at,
            lag(fact_rows.last_updated_date + fact_rows.last_updated_time)
                over key_order as previous_last_updated,
            lead(fact_rows.last_updated_date + fact_rows.last_updated_time)
                over key_order as next_last_updated
        from {{ fact }} as fact_rows
        inner join {{ versions }} as key_versions
            on fact_rows.{{ record_id }} = key_versions.version_id
        window key_order as (
            partition by fact_rows.{{ key_column }}
            order by
                fact_rows.last_updated_date asc,
                fact_rows.last_updated_time asc,
                fact_rows.{{ record_id }} asc
        )
    ),

    dated as (
        select
            fact_versions.*,
            (
                case
                    when
                        fact_versions.previous_last_updated is null
                        or fact_versions.version_last_updated > fact_versions.previous_last_updated
                        then fact_versions.version_last_updated
                    -- the same last_updated as the version before: a change that did not move it
                    else greatest(
                        fact_versions.version_last_updated,
                        least(fact_versions.version_loaded_at, fact_versions.next_last_updated)
                    )
                end
            )::timestamp(3) as valid_from,
            (
                select min(deletions.deleted_at)
                from {{ ref('deletions') }} as deletions
                where
                    deletions.source_table = '{{ source_table }}'
                    and deletions.source_key = fact_versions.{{ key_column }}
                    and {{ deletion_reach('deletions') }} >= fact_versions.version_last_updated
                    and (
                        fact_versions.next_last_updated is null
                        or {{ deletion_reach('deletions') }} < fact_versions.next_last_updated
                    )
            ) as ended_by_deletion_at
        from fact_versions
    ),

    ended as (
        select
            dated.*,
            lead(dated.valid_from) over (
                partition by dated.{{ key_column }}
                order by dated.version_last_updated asc, dated.{{ record_id }} asc
            ) as next_valid_from
        from dated
    )

    select
        ended.*,
        (
            case
                when ended.ended_by_deletion_at is null then ended.next_valid_from
                -- a key inserted again after its deletion: the gap between is no version's
                else greatest(
                    ended.valid_from, least(ended.ended_by_deletion_at, ended.next_valid_from)
                )
            end
        )::timestamp(3) as valid_to,
        ended.ended_by_deletion_at is not null as is_deleted
    from ended
{%- endmacro %}
