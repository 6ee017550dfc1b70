"""CloudWatch metrics for a load: rows per table, manifests loaded, failures.

Metrics are for dashboards and alarms on trends; the load's outcome never depends on them, so a
failure to publish is a warning in the log, not an error.
"""

from __future__ import annotations

import logging
from typing import Any

NAMESPACE = "Totes/Pipeline"


def publish(
    cloudwatch: Any,
    log: logging.LoggerAdapter,
    *,
    rows_by_table: dict[str, int],
    manifests: int,
    failures: int,
) -> None:
    data: list[dict[str, Any]] = [
        {
            "MetricName": "RowsLoaded",
            "Dimensions": [{"Name": "Table", "Value": table}],
            "Value": float(rows),
            "Unit": "Count",
        }
        for table, rows in sorted(rows_by_table.items())
    ]
    data.append({"MetricName": "ManifestsLoaded", "Value": float(manifests), "Unit": "Count"})
    data.append({"MetricName": "LoadFailures", "Value": float(failures), "Unit": "Count"})
    try:
        for start in range(0, len(data), 500):  # PutMetricData takes at most 1000 per call
            cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + 500])
    except Exception as err:  # any client or endpoint problem: warn, never fail the load
        log.warning("metrics not published", error=f"{type(err).__name__}: {err}")
