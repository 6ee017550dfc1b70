-- Orders and units by salesperson and department (current state of each order). Staff whose
-- department has not arrived show department_name '' (empty-member convention).
select
    staff.department_name,
    staff.location,
    staff.staff_id,
    staff.first_name || ' ' || staff.last_name as staff_name,
    count(*) as orders,
    sum(sales.units_sold) as units_sold
from {{ ref('fact_sales_order_current') }} as sales
inner join {{ ref('dim_staff') }} as staff
    on sales.sales_staff_id = staff.staff_id
group by
    staff.department_name,
    staff.location,
    staff.staff_id,
    staff.first_name,
    staff.last_name
order by units_sold desc, staff.staff_id asc
