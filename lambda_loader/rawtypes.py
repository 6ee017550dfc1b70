"""Warehouse types for source columns, and which type changes the raw layer can absorb.

A raw column's type is derived from the manifest (`pg_type` for precision, `arrow_type` for
what the Parquet file really holds): integers and `numeric(p,s)` and `timestamp(p)` as in the
source; text, varchar and enums as `text`. `fits(a, b)` answers "does every value of type a
survive in a column of type b?"; `union` is the narrowest type both fit in, when one exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lambda_loader.manifest import Column

_INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
_INT_NAMES = {bits: name for name, bits in _INT_BITS.items()}
_INT_DIGITS = {16: 5, 32: 10, 64: 19}  # decimal digits the largest value of each needs
_FLOAT_BITS = {"real": 32, "double precision": 64}
_ARROW_INTS = {
    "int8": 16,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "uint8": 16,
    "uint16": 32,
    "uint32": 64,
}
_ARROW_TS = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_ARROW_DECIMAL = re.compile(r"^decimal(?:128|256)\((\d+), ?(-?\d+)\)$")
_SQL_NUMERIC = re.compile(r"^(?:numeric|decimal)(?:\((\d+)(?:, ?(\d+))?\))?$")
_SQL_TS = re.compile(
    r"^timestamp(?:\((\d)\))?( with(?:out)? time zone)?$|^timestamptz(?:\((\d)\))?$"
)
_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 6}  # Postgres stops at microseconds


class UnsupportedType(ValueError):
    """A column type the raw layer has no mapping for."""


@dataclass(frozen=True)
class RawType:
    """A warehouse column type. `sql` is spelled the way `format_type()` prints it."""

    family: str  # int | numeric | timestamp | timestamptz | float | text | boolean | date | other
    size: int | None = None  # int/float bits, numeric precision, timestamp precision
    scale: int | None = None  # numeric scale
    other: str = ""  # the catalog's spelling of a type outside our families

    @property
    def sql(self) -> str:
        if self.family == "int":
            return _INT_NAMES[self.size or 32]
        if self.family == "float":
            return "real" if self.size == 32 else "double precision"
        if self.family == "numeric":
            return "numeric" if self.size is None else f"numeric({self.size},{self.scale or 0})"
        if self.family in ("timestamp", "timestamptz"):
            zone = "with" if self.family == "timestamptz" else "without"
            return f"timestamp({self.size}) {zone} time zone"
        if self.family == "other":
            return self.other
        return self.family  # text, boolean, date


def for_column(column: Column) -> RawType:
    """The raw type of a manifest column; raises UnsupportedType for anything unmapped."""
    arrow = column.arrow_type.strip()
    declared = parse_sql(column.pg_type)
    if arrow in ("string", "large_string", "utf8", "large_utf8"):
        return RawType("text")  # text, varchar(n), char(n), enums: all text in raw
    if arrow in _ARROW_INTS:
        return RawType("int", _ARROW_INTS[arrow])
    if arrow == "bool":
        return RawType("boolean")
    if arrow.startswith("date32") or arrow.startswith("date64"):
        return RawType("date")
    if arrow in ("float", "float32", "halffloat", "float16"):
        return RawType("float", 32)
    if arrow in ("double", "float64"):
        return RawType("float", 64)
    if match := _ARROW_DECIMAL.match(arrow):
        if declared is not None and declared.family == "numeric":
            return declared  # "as in the source", including an unconstrained numeric
        return RawType("numeric", int(match.group(1)), max(int(match.group(2)), 0))
    if match := _ARROW_TS.match(arrow):
        family = "timestamptz" if match.group(2) else "timestamp"
        if declared is not None and declared.family == family:
            return declared
        return RawType(family, _UNIT_DIGITS[match.group(1)])
    raise UnsupportedType(
        f"column {column.name!r}: no raw type for arrow_type {arrow!r} (pg_type {column.pg_type!r})"
    )


def parse_sql(text: str) -> RawType | None:
    """A Postgres type name (as `format_type()` or a manifest spells it) → RawType, or None."""
    name = " ".join(text.strip().lower().split())
    if name in ("int", "int4", "int2", "int8"):
        name = {"int": "integer", "int4": "integer", "int2": "smallint", "int8": "bigint"}[name]
    if name in _INT_BITS:
        return RawType("int", _INT_BITS[name])
    if name in ("float4", "float8"):
        name = "real" if name == "float4" else "double precision"
    if name in _FLOAT_BITS:
        return RawType("float", _FLOAT_BITS[name])
    if name in ("text", "boolean", "bool", "date"):
        return RawType("boolean" if name == "bool" else name)
    if name.startswith(("character varying", "varchar", "character", "char")):
        return RawType("text")
    if match := _SQL_NUMERIC.match(name):
        if match.group(1) is None:
            return RawType("numeric")
        return RawType("numeric", int(match.group(1)), int(match.group(2) or 0))
    if match := _SQL_TS.match(name):
        if match.group(3) is not None or name.startswith("timestamptz"):
            return RawType("timestamptz", int(match.group(3) or 6))
        family = "timestamptz" if (match.group(2) or "").startswith(" with time") else "timestamp"
        return RawType(family, int(match.group(1) or 6))
    return None


def from_catalog(text: str) -> RawType:
    return parse_sql(text) or RawType("other", other=text)


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
