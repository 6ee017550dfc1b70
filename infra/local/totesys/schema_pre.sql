-- totesys, pre-data: enum types, sequences and tables exactly as docs/SOURCE.md describes the
-- real (Prisma-managed) database. Split like pg_dump's sections so a bulk load can run between
-- this file and schema_post.sql (keys, indexes, foreign keys), which is much faster than
-- checking every foreign key row by row during COPY. One statement per `;` at a line end.

CREATE TYPE "PaymentTypeName" AS ENUM ('SALES_RECEIPT', 'SALES_REFUND', 'PURCHASE_PAYMENT', 'PURCHASE_REFUND');

CREATE TYPE "TransactionType" AS ENUM ('SALE', 'PURCHASE');

CREATE SEQUENCE "address_address_id_seq" AS integer;

CREATE TABLE "address" (
    "address_id" integer NOT NULL DEFAULT nextval('"address_address_id_seq"'::regclass),
    "address_line_1" text NOT NULL,
    "address_line_2" text,
    "district" text,
    "city" text NOT NULL,
    "postal_code" text NOT NULL,
    "country" text NOT NULL,
    "phone" text NOT NULL,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "address_address_id_seq" OWNED BY "address"."address_id";

CREATE SEQUENCE "counterparty_counterparty_id_seq" AS integer;

CREATE TABLE "counterparty" (
    "counterparty_id" integer NOT NULL DEFAULT nextval('"counterparty_counterparty_id_seq"'::regclass),
    "counterparty_legal_name" text NOT NULL,
    "legal_address_id" integer NOT NULL,
    "commercial_contact" text,
    "delivery_contact" text,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "counterparty_counterparty_id_seq" OWNED BY "counterparty"."counterparty_id";

CREATE SEQUENCE "currency_currency_id_seq" AS integer;

CREATE TABLE "currency" (
    "currency_id" integer NOT NULL DEFAULT nextval('"currency_currency_id_seq"'::regclass),
    "currency_code" varchar(3) NOT NULL,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "currency_currency_id_seq" OWNED BY "currency"."currency_id";

CREATE SEQUENCE "department_department_id_seq" AS integer;

CREATE TABLE "department" (
    "department_id" integer NOT NULL DEFAULT nextval('"department_department_id_seq"'::regclass),
    "department_name" text NOT NULL,
    "location" text,
    "manager" text,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "department_department_id_seq" OWNED BY "department"."department_id";

CREATE SEQUENCE "design_design_id_seq" AS integer;

CREATE TABLE "design" (
    "design_id" integer NOT NULL DEFAULT nextval('"design_design_id_seq"'::regclass),
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "design_name" text NOT NULL,
    "file_location" text NOT NULL,
    "file_name" text NOT NULL,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "design_design_id_seq" OWNED BY "design"."design_id";

CREATE SEQUENCE "payment_type_payment_type_id_seq" AS integer;

CREATE TABLE "payment_type" (
    "payment_type_id" integer NOT NULL DEFAULT nextval('"payment_type_payment_type_id_seq"'::regclass),
    "payment_type_name" "PaymentTypeName" NOT NULL,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "payment_type_payment_type_id_seq" OWNED BY "payment_type"."payment_type_id";

CREATE SEQUENCE "staff_staff_id_seq" AS integer;

CREATE TABLE "staff" (
    "staff_id" integer NOT NULL DEFAULT nextval('"staff_staff_id_seq"'::regclass),
    "first_name" text NOT NULL,
    "last_name" text NOT NULL,
    "department_id" integer NOT NULL,
    "email_address" text NOT NULL,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "staff_staff_id_seq" OWNED BY "staff"."staff_id";

CREATE SEQUENCE "sales_order_sales_order_id_seq" AS integer;

CREATE TABLE "sales_order" (
    "sales_order_id" integer NOT NULL DEFAULT nextval('"sales_order_sales_order_id_seq"'::regclass),
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL,
    "design_id" integer NOT NULL,
    "staff_id" integer NOT NULL,
    "counterparty_id" integer NOT NULL,
    "units_sold" integer NOT NULL,
    "unit_price" numeric(10,2) NOT NULL,
    "currency_id" integer NOT NULL,
    "agreed_delivery_date" text NOT NULL,
    "agreed_payment_date" text NOT NULL,
    "agreed_delivery_location_id" integer NOT NULL
);

ALTER SEQUENCE "sales_order_sales_order_id_seq" OWNED BY "sales_order"."sales_order_id";

CREATE SEQUENCE "purchase_order_purchase_order_id_seq" AS integer;

CREATE TABLE "purchase_order" (
    "purchase_order_id" integer NOT NULL DEFAULT nextval('"purchase_order_purchase_order_id_seq"'::regclass),
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL,
    "staff_id" integer NOT NULL,
    "counterparty_id" integer NOT NULL,
    "item_code" text NOT NULL,
    "item_quantity" integer NOT NULL,
    "item_unit_price" numeric(10,2) NOT NULL,
    "currency_id" integer NOT NULL,
    "agreed_delivery_date" text NOT NULL,
    "agreed_payment_date" text NOT NULL,
    "agreed_delivery_location_id" integer NOT NULL
);

ALTER SEQUENCE "purchase_order_purchase_order_id_seq" OWNED BY "purchase_order"."purchase_order_id";

CREATE SEQUENCE "transaction_transaction_id_seq" AS integer;

CREATE TABLE "transaction" (
    "transaction_id" integer NOT NULL DEFAULT nextval('"transaction_transaction_id_seq"'::regclass),
    "transaction_type" "TransactionType" NOT NULL,
    "sales_order_id" integer,
    "purchase_order_id" integer,
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL
);

ALTER SEQUENCE "transaction_transaction_id_seq" OWNED BY "transaction"."transaction_id";

CREATE SEQUENCE "payment_payment_id_seq" AS integer;

CREATE TABLE "payment" (
    "payment_id" integer NOT NULL DEFAULT nextval('"payment_payment_id_seq"'::regclass),
    "created_at" timestamp(3) without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_updated" timestamp(3) without time zone NOT NULL,
    "transaction_id" integer NOT NULL,
    "counterparty_id" integer NOT NULL,
    "payment_amount" numeric(10,2) NOT NULL,
    "currency_id" integer NOT NULL,
    "payment_type_id" integer NOT NULL,
    "paid" boolean NOT NULL,
    "payment_date" text NOT NULL,
    "company_ac_number" integer NOT NULL,
    "counterparty_ac_number" integer NOT NULL
);

ALTER SEQUENCE "payment_payment_id_seq" OWNED BY "payment"."payment_id";

-- Prisma's bookkeeping table: not business data, never extracted, left empty here.
CREATE TABLE "_prisma_migrations" (
    "id" varchar(36) NOT NULL,
    "checksum" varchar(64) NOT NULL,
    "finished_at" timestamp with time zone,
    "migration_name" varchar(255) NOT NULL,
    "logs" text,
    "rolled_back_at" timestamp with time zone,
    "started_at" timestamp with time zone NOT NULL DEFAULT now(),
    "applied_steps_count" integer NOT NULL DEFAULT 0
);
