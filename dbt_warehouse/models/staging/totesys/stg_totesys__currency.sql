with source as (
    select * from {{ source('totesys', 'currency') }}
),

renamed as (
    select
        currency_id::integer as currency_id,
        currency_code::varchar as currency_code,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at
    from source
)

select * from renamed
