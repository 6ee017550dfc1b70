{{ config(materialized='view') }}

-- The current state: the latest version of every sales_order (see doc current_vs_history).
select distinct on (fact.sales_order_id) fact.*
from {{ ref('fact_sales_order') }} as fact
order by
    fact.sales_order_id asc,
    fact.last_updated_date desc,
    fact.last_updated_time desc,
    fact.sales_record_id desc
