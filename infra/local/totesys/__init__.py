"""The local stand-in for `totesys`, the Terrific Totes OLTP database (docs/SOURCE.md).

`create_schema(conn)` builds the exact schema, `seed(conn, scale=...)` fills it with realistic,
deterministic data, `simulate(conn, ...)` writes new business activity the way the app does.
Cheap fixtures for other tests: `seed(conn, scale=0.05, end=date(2024, 11, 1))`.
"""

from infra.local.totesys.schema import TOTESYS_TABLES, create_schema
from infra.local.totesys.seed import SeedError, SeedReport, seed
from infra.local.totesys.simulate import SimulationResult, simulate

__all__ = [
    "TOTESYS_TABLES",
    "SeedError",
    "SeedReport",
    "SimulationResult",
    "create_schema",
    "seed",
    "simulate",
]
