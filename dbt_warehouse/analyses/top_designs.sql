-- The twenty designs selling the most units (current state of each order), with their value
-- per currency kept apart (amounts in different currencies are never added together).
select
    design.design_id,
    design.design_name,
    sum(sales.units_sold) as units_sold,
    count(*) as orders,
    sum(sales.units_sold * sales.unit_price)
    filter (where currency.currency_code = 'GBP') as sales_value_gbp,
    sum(sales.units_sold * sales.unit_price)
    filter (where currency.currency_code = 'USD') as sales_value_usd,
    sum(sales.units_sold * sales.unit_price)
    filter (where currency.currency_code = 'EUR') as sales_value_eur
from {{ ref('fact_sales_order_current') }} as sales
inner join {{ ref('dim_design') }} as design
    on sales.design_id = design.design_id
inner join {{ ref('dim_currency') }} as currency
    on sales.currency_id = currency.currency_id
group by design.design_id, design.design_name
order by units_sold desc, design.design_id asc
limit 20
