-- The twenty customers buying the most units (current state of each sales order).
select
    counterparty.counterparty_id,
    counterparty.counterparty_legal_name,
    counterparty.counterparty_legal_country,
    count(*) as orders,
    sum(sales.units_sold) as units_sold
from {{ ref('fact_sales_order_current') }} as sales
inner join {{ ref('dim_counterparty') }} as counterparty
    on sales.counterparty_id = counterparty.counterparty_id
group by
    counterparty.counterparty_id,
    counterparty.counterparty_legal_name,
    counterparty.counterparty_legal_country
order by units_sold desc, counterparty.counterparty_id asc
limit 20
