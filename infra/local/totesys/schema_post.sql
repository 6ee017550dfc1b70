-- totesys, post-data: primary keys, the three unique indexes and every foreign key, named as
-- Prisma names them. Run after a bulk load (see schema_pre.sql). One statement per `;` at a line end.

ALTER TABLE "_prisma_migrations" ADD CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id");
ALTER TABLE "address" ADD CONSTRAINT "address_pkey" PRIMARY KEY ("address_id");
ALTER TABLE "counterparty" ADD CONSTRAINT "counterparty_pkey" PRIMARY KEY ("counterparty_id");
ALTER TABLE "currency" ADD CONSTRAINT "currency_pkey" PRIMARY KEY ("currency_id");
ALTER TABLE "department" ADD CONSTRAINT "department_pkey" PRIMARY KEY ("department_id");
ALTER TABLE "design" ADD CONSTRAINT "design_pkey" PRIMARY KEY ("design_id");
ALTER TABLE "payment_type" ADD CONSTRAINT "payment_type_pkey" PRIMARY KEY ("payment_type_id");
ALTER TABLE "staff" ADD CONSTRAINT "staff_pkey" PRIMARY KEY ("staff_id");
ALTER TABLE "sales_order" ADD CONSTRAINT "sales_order_pkey" PRIMARY KEY ("sales_order_id");
ALTER TABLE "purchase_order" ADD CONSTRAINT "purchase_order_pkey" PRIMARY KEY ("purchase_order_id");
ALTER TABLE "transaction" ADD CONSTRAINT "transaction_pkey" PRIMARY KEY ("transaction_id");
ALTER TABLE "payment" ADD CONSTRAINT "payment_pkey" PRIMARY KEY ("payment_id");

CREATE UNIQUE INDEX "payment_transaction_id_key" ON "payment" ("transaction_id");
CREATE UNIQUE INDEX "transaction_sales_order_id_key" ON "transaction" ("sales_order_id");
CREATE UNIQUE INDEX "transaction_purchase_order_id_key" ON "transaction" ("purchase_order_id");

ALTER TABLE "counterparty" ADD CONSTRAINT "counterparty_legal_address_id_fkey" FOREIGN KEY ("legal_address_id") REFERENCES "address" ("address_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "staff" ADD CONSTRAINT "staff_department_id_fkey" FOREIGN KEY ("department_id") REFERENCES "department" ("department_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "sales_order" ADD CONSTRAINT "sales_order_design_id_fkey" FOREIGN KEY ("design_id") REFERENCES "design" ("design_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "sales_order" ADD CONSTRAINT "sales_order_staff_id_fkey" FOREIGN KEY ("staff_id") REFERENCES "staff" ("staff_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "sales_order" ADD CONSTRAINT "sales_order_counterparty_id_fkey" FOREIGN KEY ("counterparty_id") REFERENCES "counterparty" ("counterparty_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "sales_order" ADD CONSTRAINT "sales_order_currency_id_fkey" FOREIGN KEY ("currency_id") REFERENCES "currency" ("currency_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "sales_order" ADD CONSTRAINT "sales_order_agreed_delivery_location_id_fkey" FOREIGN KEY ("agreed_delivery_location_id") REFERENCES "address" ("address_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "purchase_order" ADD CONSTRAINT "purchase_order_staff_id_fkey" FOREIGN KEY ("staff_id") REFERENCES "staff" ("staff_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "purchase_order" ADD CONSTRAINT "purchase_order_counterparty_id_fkey" FOREIGN KEY ("counterparty_id") REFERENCES "counterparty" ("counterparty_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "purchase_order" ADD CONSTRAINT "purchase_order_currency_id_fkey" FOREIGN KEY ("currency_id") REFERENCES "currency" ("currency_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "purchase_order" ADD CONSTRAINT "purchase_order_agreed_delivery_location_id_fkey" FOREIGN KEY ("agreed_delivery_location_id") REFERENCES "address" ("address_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "transaction" ADD CONSTRAINT "transaction_sales_order_id_fkey" FOREIGN KEY ("sales_order_id") REFERENCES "sales_order" ("sales_order_id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "transaction" ADD CONSTRAINT "transaction_purchase_order_id_fkey" FOREIGN KEY ("purchase_order_id") REFERENCES "purchase_order" ("purchase_order_id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "payment" ADD CONSTRAINT "payment_transaction_id_fkey" FOREIGN KEY ("transaction_id") REFERENCES "transaction" ("transaction_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "payment" ADD CONSTRAINT "payment_counterparty_id_fkey" FOREIGN KEY ("counterparty_id") REFERENCES "counterparty" ("counterparty_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "payment" ADD CONSTRAINT "payment_currency_id_fkey" FOREIGN KEY ("currency_id") REFERENCES "currency" ("currency_id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "payment" ADD CONSTRAINT "payment_payment_type_id_fkey" FOREIGN KEY ("payment_type_id") REFERENCES "payment_type" ("payment_type_id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Not in the real totesys: an index on last_updated, the one thing the extract asks of the
-- source's DBA (ingest/README.md, "Reading only what changed"). With it a run reads its window
-- by an index range scan; without it, by a sequential scan of each table (slower, as correct).
CREATE INDEX "address_last_updated_idx" ON "address" ("last_updated");
CREATE INDEX "counterparty_last_updated_idx" ON "counterparty" ("last_updated");
CREATE INDEX "currency_last_updated_idx" ON "currency" ("last_updated");
CREATE INDEX "department_last_updated_idx" ON "department" ("last_updated");
CREATE INDEX "design_last_updated_idx" ON "design" ("last_updated");
CREATE INDEX "payment_type_last_updated_idx" ON "payment_type" ("last_updated");
CREATE INDEX "staff_last_updated_idx" ON "staff" ("last_updated");
CREATE INDEX "sales_order_last_updated_idx" ON "sales_order" ("last_updated");
CREATE INDEX "purchase_order_last_updated_idx" ON "purchase_order" ("last_updated");
CREATE INDEX "transaction_last_updated_idx" ON "transaction" ("last_updated");
CREATE INDEX "payment_last_updated_idx" ON "payment" ("last_updated");
