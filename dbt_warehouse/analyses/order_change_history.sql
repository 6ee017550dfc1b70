-- Full history: sales orders that changed after creation, every version in order, with what
-- changed (units and price). Reads the fact itself, not the current view.
select
    sales.sales_order_id,
    sales.sales_record_id,
    sales.last_updated_date + sales.last_updated_time as version_written_at,
    sales.units_sold,
    sales.unit_price,
    sales.units_sold - lag(sales.units_sold) over by_order as units_change
from {{ ref('fact_sales_order') }} as sales
where
    sales.sales_order_id in (
        select changed.sales_order_id
        from {{ ref('fact_sales_order') }} as changed
        group by changed.sales_order_id
        having count(*) > 1
    )
window
    by_order as (
        partition by sales.sales_order_id
        order by sales.last_updated_date, sales.last_updated_time
    )
order by sales.sales_order_id asc, version_written_at asc
