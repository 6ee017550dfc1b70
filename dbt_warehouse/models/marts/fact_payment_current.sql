{{ config(materialized='view') }}

-- The current state: the latest version of every payment (see doc current_vs_history).
select distinct on (fact.payment_id) fact.*
from {{ ref('fact_payment') }} as fact
order by
    fact.payment_id asc,
    fact.last_updated_date desc,
    fact.last_updated_time desc,
    fact.payment_record_id desc
