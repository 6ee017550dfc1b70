with source as (
    select * from {{ source('totesys', 'address') }}
),

renamed as (
    select
        address_id::integer as address_id,
        address_line_1::varchar as address_line_1,
        address_line_2::varchar as address_line_2,
        district::varchar as district,
        city::varchar as city,
        postal_code::varchar as postal_code,
        country::varchar as country,
        phone::varchar as phone,
        created_at,
        last_updated,
        _manifest_seq,
        _run_id,
        _source_file,
        _loaded_at
    from source
)

select * from renamed
