"""A small, deterministic, realistic totesys for dbt development and tests, used only while
`infra.local.totesys.seed` is not importable (the fixture prefers the real seed module).

`fill(conn)` writes the reference tables the way docs/SOURCE.md describes them (3 currencies,
4 payment types, 8 departments, 20 staff, 30 addresses, 20 counterparties) plus designs and a few
hundred orders, each with its transaction and payment. `burst(conn)` writes new activity: new
orders (with transactions and payments) stamped now.
"""

from __future__ import annotations

from typing import Any

_FILL = """
select setseed(0.42);
insert into currency (currency_id, currency_code, created_at, last_updated) values
  (1, 'GBP', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'),
  (2, 'USD', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'),
  (3, 'EUR', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962');
insert into payment_type (payment_type_id, payment_type_name, created_at, last_updated) values
  (1, 'SALES_RECEIPT', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'),
  (2, 'SALES_REFUND', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'),
  (3, 'PURCHASE_PAYMENT', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'),
  (4, 'PURCHASE_REFUND', '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962');
insert into department (department_id, department_name, location, manager, created_at, last_updated)
select i, (array['Sales','Purchasing','Production','Dispatch','Finance','Facilities',
                 'Communications','HR'])[i],
       case when i % 2 = 0 then 'Leeds' else 'Manchester' end,
       'Manager ' || i, '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'
from generate_series(1, 8) as i;
insert into staff (staff_id, first_name, last_name, department_id, email_address,
                   created_at, last_updated)
select i, f, l, 1 + (i * 3) % 8, lower(f) || '.' || lower(l) || '@terrifictotes.com',
       '2022-11-03 14:20:51.563', '2022-11-03 14:20:51.563'
from generate_series(1, 20) as i,
     lateral (select (array['Jeremie','Deron','Jeanette','Ana','Magdalena','Korey','Raphael',
        'Oswaldo','Brody','Jazmyn','Meda','Imani','Stan','Rigoberto','Tom','Jett','Irving',
        'Tomasa','Pierre','Flavio'])[i] as f,
        (array['Franey','Beier','Erdman','Glover','Zieme','Kreiger','Rippin','Bergstrom',
        'Ratke','Kuhn','Cremin','Walsh','Lehner','VonRueden','Gutkowski','Parisian','O''Keefe',
        'Sauer','Rippin','Schmitt'])[i] as l) as n;
insert into address (address_id, address_line_1, address_line_2, district, city, postal_code,
                     country, phone, created_at, last_updated)
select i, (100 + i * 7) || ' ' || (array['Alexie Cliffs','Zieme Mountains','Torphy Turnpike',
          'Rosella Ports','Kulas Lights'])[1 + i % 5],
       case when i % 3 = 0 then 'Suite ' || i end,
       case when i % 2 = 0 then (array['Avon','Bedfordshire','Cambridgeshire'])[1 + i % 3] end,
       (array['New Patienceburgh','Aliso Viejo','Lake Arne','Oakland','Fort Shadburgh',
              'Olsonside'])[1 + i % 6],
       lpad((i * 7919 % 99999)::text, 5, '0'),
       (array['Austria','Antigua and Barbuda','San Marino','Germany','Turkey',
              'Portugal'])[1 + i % 6],
       '1803 ' || lpad((i * 637)::text, 6, '0'),
       '2022-11-03 14:20:49.962', '2022-11-03 14:20:49.962'
from generate_series(1, 30) as i;
insert into counterparty (counterparty_id, counterparty_legal_name, legal_address_id,
                          commercial_contact, delivery_contact, created_at, last_updated)
select i, 'Counterparty ' || i || ' Ltd', 1 + (i * 11) % 30, 'Contact ' || i, null,
       '2022-11-03 14:20:51.563', '2022-11-03 14:20:51.563'
from generate_series(1, 20) as i;
insert into design (design_id, created_at, design_name, file_location, file_name, last_updated)
select i, ts, (array['Wooden','Steel','Granite','Bronze','Cotton'])[1 + i % 5],
       (array['/usr','/private','/System','/Users'])[1 + i % 4],
       lower((array['wooden','steel','granite','bronze','cotton'])[1 + i % 5]) || '-'
         || to_char(ts, 'YYYYMMDD') || '-' || substr(md5(i::text), 1, 4) || '.json', ts
from generate_series(1, 40) as i,
     lateral (select timestamp '2022-11-03 14:20:52.186' + (i || ' days')::interval
                     + ((i * 137) % 1000 || ' milliseconds')::interval as ts) as t;
insert into sales_order (sales_order_id, created_at, last_updated, design_id, staff_id,
    counterparty_id, units_sold, unit_price, currency_id, agreed_delivery_date,
    agreed_payment_date, agreed_delivery_location_id)
select i, ts, ts, 1 + (i * 7) % 40, 1 + (i * 3) % 20, 1 + (i * 5) % 20,
       1001 + (i * 7919) % 98972, round((2 + ((i * 37) % 200) / 100.0)::numeric, 2),
       1 + i % 3, to_char(ts + ((2 + i % 6) || ' days')::interval, 'YYYY-MM-DD'),
       to_char(ts + ((1 + i % 5) || ' days')::interval, 'YYYY-MM-DD'), 1 + (i * 13) % 30
from generate_series(1, 300) as i,
     lateral (select timestamp '2022-11-03 14:20:52.186' + (i * 61 || ' hours')::interval
                     + ((i * 211) % 1000 || ' milliseconds')::interval as ts) as t;
insert into purchase_order (purchase_order_id, created_at, last_updated, staff_id,
    counterparty_id, item_code, item_quantity, item_unit_price, currency_id,
    agreed_delivery_date, agreed_payment_date, agreed_delivery_location_id)
select i, ts, ts, 1 + (i * 7) % 20, 1 + (i * 3) % 20, upper(substr(md5(i::text), 1, 7)),
       1 + (i * 97) % 999, round((3.32 + ((i * 7919) % 99575) / 100.0)::numeric, 2),
       1 + (i + 1) % 3, to_char(ts + ((3 + i % 9) || ' days')::interval, 'YYYY-MM-DD'),
       to_char(ts + ((2 + i % 4) || ' days')::interval, 'YYYY-MM-DD'), 1 + (i * 17) % 30
from generate_series(1, 120) as i,
     lateral (select timestamp '2022-11-03 14:22:10.000' + (i * 151 || ' hours')::interval
                     + ((i * 389) % 1000 || ' milliseconds')::interval as ts) as t;
"""

_TRANSACTIONS = """
insert into transaction (transaction_type, sales_order_id, purchase_order_id, created_at,
                         last_updated)
select 'SALE'::"TransactionType", s.sales_order_id, null, s.created_at, s.last_updated
from sales_order s where not exists (
    select 1 from transaction t where t.sales_order_id = s.sales_order_id)
union all
select 'PURCHASE'::"TransactionType", null, p.purchase_order_id, p.created_at, p.last_updated
from purchase_order p where not exists (
    select 1 from transaction t where t.purchase_order_id = p.purchase_order_id)
order by 4, 2, 3;
insert into payment (created_at, last_updated, transaction_id, counterparty_id, payment_amount,
    currency_id, payment_type_id, paid, payment_date, company_ac_number, counterparty_ac_number)
select t.created_at, t.last_updated, t.transaction_id,
       coalesce(s.counterparty_id, p.counterparty_id),
       coalesce(s.units_sold * s.unit_price, p.item_quantity * p.item_unit_price),
       coalesce(s.currency_id, p.currency_id),
       case when t.transaction_type = 'SALE' then 1 else 3 end,
       t.transaction_id % 3 <> 0,
       coalesce(s.agreed_payment_date, p.agreed_payment_date),
       10000000 + t.transaction_id, 20000000 + t.transaction_id
from transaction t
left join sales_order s on s.sales_order_id = t.sales_order_id
left join purchase_order p on p.purchase_order_id = t.purchase_order_id
where not exists (select 1 from payment y where y.transaction_id = t.transaction_id)
order by t.transaction_id;
"""

_SEQUENCES = [
    ("address", "address_id"),
    ("counterparty", "counterparty_id"),
    ("currency", "currency_id"),
    ("department", "department_id"),
    ("design", "design_id"),
    ("payment_type", "payment_type_id"),
    ("staff", "staff_id"),
    ("sales_order", "sales_order_id"),
    ("purchase_order", "purchase_order_id"),
]

_BURST = """
insert into sales_order (created_at, last_updated, design_id, staff_id, counterparty_id,
    units_sold, unit_price, currency_id, agreed_delivery_date, agreed_payment_date,
    agreed_delivery_location_id)
select ts, ts, 1 + i % 40, 1 + i % 20, 1 + i % 20, 5000 + i, 3.25, 1 + i % 3,
       to_char(ts + interval '400 days', 'YYYY-MM-DD'),
       to_char(ts + interval '30 days', 'YYYY-MM-DD'), 1 + i % 30
from generate_series(1, :orders) as i,
     lateral (select localtimestamp(3) as ts) as t;
"""


def _run_script(conn: Any, script: str) -> None:
    for statement in script.split(";\n"):
        if statement.strip():
            conn.run(statement)


def fill(conn: Any) -> None:
    """Create the totesys schema (if absent) and fill it with a few hundred realistic rows."""
    from infra.local.totesys.schema import create_schema

    present = conn.run(
        "select count(*) from information_schema.tables "
        "where table_schema = 'public' and table_name = 'sales_order'"
    )[0][0]
    if not present:
        create_schema(conn)
    _run_script(conn, _FILL)
    _run_script(conn, _TRANSACTIONS)
    for table, key in _SEQUENCES:
        conn.run(
            f"select setval(pg_get_serial_sequence('{table}', '{key}'), "
            f"(select max({key}) from {table}))"
        )


_UPDATES = """
update sales_order set units_sold = units_sold + 7, last_updated = localtimestamp(3)
where sales_order_id in (3, 5);
update address set address_line_1 = '1 Moved Street', city = 'Leeds',
    last_updated = localtimestamp(3)
where address_id = (select legal_address_id from counterparty where counterparty_id = 1);
update department set department_name = 'Sales and Marketing', last_updated = localtimestamp(3)
where department_id = 1;
update payment set paid = true, last_updated = localtimestamp(3)
where payment_id = (select min(payment_id) from payment where not paid);
"""


def burst(conn: Any, orders: int = 5) -> None:
    """New sales orders stamped now (each with its transaction and payment), two orders'
    units changed, a counterparty's legal address moved, a department renamed, a payment paid."""
    conn.run(_BURST, orders=orders)
    _run_script(conn, _TRANSACTIONS)
    _run_script(conn, _UPDATES)
