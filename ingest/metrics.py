"""CloudWatch metrics for a run: rows per table and the freshness lag. Best effort: a failure
to publish is a warning, never a failed extract."""

from __future__ import annotations

import logging
from typing import Any

NAMESPACE = "Totes/Pipeline"


def publish(cloudwatch: Any, rows_by_table: dict[str, int], lag_s: float, log: Any) -> None:
    data: list[dict[str, Any]] = [
        {
            "MetricName": "ExtractedRows",
            "Dimensions": [{"Name": "Table", "Value": table}],
            "Value": float(rows),
            "Unit": "Count",
        }
        for table, rows in rows_by_table.items()
    ]
    data.append({"MetricName": "ExtractLagSeconds", "Value": float(lag_s), "Unit": "Seconds"})
    try:
        for start in range(0, len(data), 20):  # PutMetricData's limit per call in older APIs
            cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + 20])
    except Exception as err:  # metrics must never fail the data movement
        log.log(logging.WARNING, "metrics not published", error=f"{type(err).__name__}: {err}")
