-- Payments not yet made (current state: a payment that has flipped to paid is not counted),
-- by payment type and currency, split into overdue and not yet due.
select
    payment_type.payment_type_name,
    currency.currency_code,
    payment.payment_date < current_date as overdue,
    count(*) as payments,
    sum(payment.payment_amount) as amount_outstanding,
    min(payment.payment_date) as earliest_payment_date
from {{ ref('fact_payment_current') }} as payment
inner join {{ ref('dim_payment_type') }} as payment_type
    on payment.payment_type_id = payment_type.payment_type_id
inner join {{ ref('dim_currency') }} as currency
    on payment.currency_id = currency.currency_id
where not payment.paid
group by payment_type.payment_type_name, currency.currency_code, overdue
order by payment_type.payment_type_name asc, currency.currency_code asc, overdue desc
