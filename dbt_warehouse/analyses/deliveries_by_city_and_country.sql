-- Units due for delivery by delivery country and city (current state of each sales order,
-- at the delivery location's current address).
select
    location.country,
    location.city,
    count(*) as orders,
    sum(sales.units_sold) as units_sold,
    min(sales.agreed_delivery_date) as first_delivery,
    max(sales.agreed_delivery_date) as last_delivery
from {{ ref('fact_sales_order_current') }} as sales
inner join {{ ref('dim_location') }} as location
    on sales.agreed_delivery_location_id = location.location_id
group by location.country, location.city
order by units_sold desc, location.country asc, location.city asc
