"""Postgres column types → Arrow types: the explicit schema every extracted file carries."""

from __future__ import annotations

import pyarrow as pa


class UnsupportedTypeError(TypeError):
    """A source column whose type the pipeline has no faithful Arrow mapping for."""


_FIXED: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    # Text-like types: carried as strings; `text` dates stay text until the warehouse.
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "uuid": pa.string(),
}


def arrow_type(base_type: str, typmod: int, *, is_enum: bool = False) -> pa.DataType:
    """The Arrow type for a column of Postgres type `base_type` (pg_type.typname of the
    column's type, or of a domain's base type) with modifier `typmod` (-1 when none)."""
    if is_enum:
        return pa.string()
    if base_type in _FIXED:
        return _FIXED[base_type]
    if base_type == "numeric":
        if typmod < 0:
            # Unconstrained numeric has no fixed scale (and may hold NaN): a string keeps
            # every value exactly; the warehouse casts it.
            return pa.string()
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if precision > 38:
            return pa.string()
        return pa.decimal128(precision, scale)
    if base_type in ("timestamp", "timestamptz"):
        # typmod is the fractional-second precision; none means 6 (microseconds).
        unit = "ms" if 0 <= typmod <= 3 else "us"
        return pa.timestamp(unit, tz="UTC" if base_type == "timestamptz" else None)
    raise UnsupportedTypeError(f"no Arrow mapping for Postgres type {base_type!r}")
