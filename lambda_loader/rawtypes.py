"""Warehouse types for source columns, and which type changes the raw layer can absorb.

A raw column's type is derived from the manifest (`pg_type` for precision, `arrow_type` for
what the Parquet file really holds): integers and `numeric(p,s)` and `timestamp(p)` as in the
source; text, varchar and enums as `text`. `fits(a, b)` answers "does every value of type a
survive in a column of type b?"; `union` is the narrowest type both fit in, when one exists.
Type names are read by `runtime.pg_types.parse`; the policy here is the loader's own.
"""

from __future__ import annotations

import pyarrow as pa

from runtime.pg_types import Column, PgType, arrow_from_text, parse

# A raw column's type: a Postgres type as the pipeline reads it, spelled by `.sql` for DDL.
RawType = PgType

_INT_DIGITS = {16: 5, 32: 10, 64: 19}  # decimal digits the largest value of each needs
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 6}  # Postgres stops at microseconds


class UnsupportedType(ValueError):
    """A column type the raw layer has no mapping for."""


def for_column(column: Column) -> RawType:
    """The raw type of a manifest column; raises UnsupportedType for anything unmapped."""
    try:
        arrow = arrow_from_text(column.arrow_type)
    except ValueError:
        arrow = None
    raw = None if arrow is None else _from_arrow(arrow, parse(column.pg_type))
    if raw is None:
        raise UnsupportedType(
            f"column {column.name!r}: no raw type for arrow_type {column.arrow_type.strip()!r} "
            f"(pg_type {column.pg_type!r})"
        )
    return raw


def _from_arrow(arrow: pa.DataType, declared: PgType | None) -> RawType | None:
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return RawType("text")  # text, varchar(n), char(n), enums: all text in raw
    if pa.types.is_signed_integer(arrow):
        return RawType("int", max(arrow.bit_width, 16))
    if pa.types.is_unsigned_integer(arrow) and arrow.bit_width < 64:
        return RawType("int", max(arrow.bit_width * 2, 16))  # the next signed width holds it
    if pa.types.is_boolean(arrow):
        return RawType("boolean")
    if pa.types.is_date(arrow):
        return RawType("date")
    if pa.types.is_floating(arrow):
        return RawType("float", 64 if arrow.bit_width == 64 else 32)
    if pa.types.is_decimal(arrow):
        if declared is not None and declared.family == "numeric":
            return declared  # "as in the source", including an unconstrained numeric
        return RawType("numeric", arrow.precision, max(arrow.scale, 0))
    if pa.types.is_timestamp(arrow):
        family = "timestamptz" if arrow.tz else "timestamp"
        if declared is not None and declared.family == family:
            return declared
        return RawType(family, _UNIT_DIGITS[arrow.unit])
    return None


def from_catalog(text: str) -> RawType:
    """A type as the warehouse catalog prints it; one outside the families is kept by name."""
    return parse(text) or RawType("other", other=text)


def fits(a: RawType, b: RawType) -> bool:
    """True when every value of type `a` is stored exactly by a column of type `b`."""
    if a == b:
        return True
    if a.family == "int" and b.family == "int":
        return (a.size or 0) <= (b.size or 0)
    if a.family == "int" and b.family == "numeric":
        return b.size is None or b.size - (b.scale or 0) >= _INT_DIGITS[a.size or 64]
    if a.family == "numeric" and b.family == "numeric":
        if b.size is None:
            return True
        if a.size is None:
            return False
        return (b.scale or 0) >= (a.scale or 0) and b.size - (b.scale or 0) >= a.size - (
            a.scale or 0
        )
    if a.family == b.family and a.family in ("timestamp", "timestamptz", "float"):
        return (a.size or 0) <= (b.size or 0)
    return False


def union(a: RawType, b: RawType) -> RawType | None:
    """The narrowest type holding every value of both, within compatible families; else None."""
    if fits(a, b):
        return b
    if fits(b, a):
        return a
    families = {a.family, b.family}
    if families <= {"int", "numeric"}:
        if RawType("numeric") in (a, b):
            return RawType("numeric")
        digits = max(_whole_digits(a), _whole_digits(b))
        scale = max(a.scale or 0, b.scale or 0)
        return RawType("numeric", digits + scale, scale) if digits + scale <= 1000 else None
    return None


def _whole_digits(t: RawType) -> int:
    if t.family == "int":
        return _INT_DIGITS[t.size or 64]
    return (t.size or 0) - (t.scale or 0)
