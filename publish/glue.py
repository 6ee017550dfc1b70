"""The processed bucket's tables in the AWS Glue Data Catalog, so Athena can query the lake copy.

One Glue table per warehouse table at `s3://<processed>/marts/<table>/`, partitioned by
`published_on` (a date): the folder `<yyyy>/<mm>/<dd>/` each file was published into. Tables and
partitions are created when absent, so registering is idempotent and safe to repeat after a crash.
awswrangler's catalog functions do the work; its Glue client is pointed at
`settings.aws_endpoint_url` (moto locally) for the duration of each call only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pyarrow as pa

from runtime.config import Settings

DEFAULT_DATABASE = "totes_marts"
PARTITION = "published_on"


class CatalogError(RuntimeError):
    """Glue refused a database, table or partition; the message names which."""


def database_name(settings: Settings) -> str:
    return settings.glue_database or DEFAULT_DATABASE


def table_location(bucket: str, table: str) -> str:
    return f"s3://{bucket}/marts/{table}/"


def partition_location(bucket: str, table: str, day: date) -> str:
    return f"{table_location(bucket, table)}{day:%Y/%m/%d}/"


def register(settings: Settings, table: str, schema: pa.Schema, day: date | None) -> None:
    """Make sure the database, the table (with this schema) and the day's partition exist
    (`day` None: the table alone, so readers can query it before its first file)."""
    import awswrangler as wr

    database = database_name(settings)
    columns = {f.name: wr._data_types.pyarrow2athena(f.type) for f in schema}
    try:
        with _aimed_at(settings) as session:
            wr.catalog.create_database(database, exist_ok=True, boto3_session=session)
            current = wr.catalog.get_table_types(database, table, boto3_session=session)
            wanted = {**columns, PARTITION: "date"}
            if current != wanted:
                wr.catalog.create_parquet_table(
                    database=database,
                    table=table,
                    path=table_location(settings.processed_bucket, table),
                    columns_types=columns,
                    partitions_types={PARTITION: "date"},
                    mode="update",  # keeps the partitions (overwrite would drop them)
                    description=f"Lake copy of marts.{table} (append-only Parquet files)",
                    boto3_session=session,
                )
            if day is not None:
                wr.catalog.add_parquet_partitions(
                    database=database,
                    table=table,
                    partitions_values={
                        partition_location(settings.processed_bucket, table, day): [day.isoformat()]
                    },
                    boto3_session=session,
                )
    except Exception as err:
        raise CatalogError(f"cannot register {database}.{table} in Glue: {err}") from err


@contextmanager
def _aimed_at(settings: Settings) -> Iterator[Any]:
    """A boto3 session in the settings' region, with awswrangler's Glue endpoint overridden."""
    import awswrangler as wr
    import boto3

    saved = wr.config.glue_endpoint_url
    if settings.aws_endpoint_url:
        wr.config.glue_endpoint_url = settings.aws_endpoint_url
    try:
        yield boto3.session.Session(region_name=settings.region)
    finally:
        wr.config.glue_endpoint_url = saved
