{{ config(materialized='view') }}

-- The current state: the latest version of every purchase_order (see doc current_vs_history).
select distinct on (fact.purchase_order_id) fact.*
from {{ ref('fact_purchase_order') }} as fact
order by
    fact.purchase_order_id asc,
    fact.last_updated_date desc,
    fact.last_updated_time desc,
    fact.purchase_record_id desc
