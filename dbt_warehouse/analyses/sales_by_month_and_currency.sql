-- Sales value and units by month of order creation and currency (current state of each order).
select
    created.year,
    created.month,
    created.month_name,
    currency.currency_code,
    count(*) as orders,
    sum(sales.units_sold) as units_sold,
    sum(sales.units_sold * sales.unit_price) as sales_value
from {{ ref('fact_sales_order_current') }} as sales
inner join {{ ref('dim_date') }} as created
    on sales.created_date = created.date_id
inner join {{ ref('dim_currency') }} as currency
    on sales.currency_id = currency.currency_id
group by created.year, created.month, created.month_name, currency.currency_code
order by created.year asc, created.month asc, currency.currency_code asc
