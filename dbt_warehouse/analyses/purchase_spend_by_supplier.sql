-- Purchase spend by supplier and currency (current state of each purchase order).
select
    supplier.counterparty_id,
    supplier.counterparty_legal_name,
    currency.currency_code,
    count(*) as purchase_orders,
    sum(purchase.item_quantity) as items,
    sum(purchase.item_quantity * purchase.item_unit_price) as spend
from {{ ref('fact_purchase_order_current') }} as purchase
inner join {{ ref('dim_counterparty') }} as supplier
    on purchase.counterparty_id = supplier.counterparty_id
inner join {{ ref('dim_currency') }} as currency
    on purchase.currency_id = currency.currency_id
group by supplier.counterparty_id, supplier.counterparty_legal_name, currency.currency_code
order by spend desc, supplier.counterparty_id asc
