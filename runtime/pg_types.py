"""Postgres column types as the pipeline sees them: one parse, one Arrow type, one `Column`.

`parse` reads a type name as `format_type()` prints it (and the looser spellings a person or
a manifest may use: `int4`, `timestamptz`, `decimal(10)`) into a `PgType`. `arrow_type` maps it
to the Arrow type its values travel as, in the lake and in the marts' lake copy; a type it
does not know is an `UnsupportedTypeError` naming it, never a guess.

The types chosen (Athena and Glue read every one): integers and floats by width; `numeric(p,s)`
as `decimal128(p,s)`, but an unconstrained `numeric` (no fixed scale, may hold NaN) or one wider
than 38 digits as text, which keeps every value exactly; `timestamp(p)` in milliseconds when
p <= 3, else microseconds, and `timestamptz` as a UTC timestamp; `time` as text (Athena has no
time type); character types, enums, `uuid` and `json` as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

# What `PgType.family` can be. "other" is any type outside them, kept by its spelling.
FAMILIES = (
    "int", "float", "numeric", "timestamp", "timestamptz", "time", "text", "boolean", "date",
    "uuid", "json", "jsonb", "other",
)  # fmt: skip

_INT_BITS = {"smallint": 16, "integer": 32, "bigint": 64}
_INT_NAMES = {bits: name for name, bits in _INT_BITS.items()}
_FLOAT_BITS = {"real": 32, "double precision": 64}
_ALIASES = {
    "int": "integer",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float8": "double precision",
    "bool": "boolean",
}
_PLAIN = frozenset({"text", "boolean", "date", "uuid", "json", "jsonb"})
# Lengths do not matter to the pipeline: every character type is text.
_CHARACTER = re.compile(r"^(?:character varying|varchar|character|char|bpchar)(?:\(\d+\))?$")
_NUMERIC = re.compile(r"^(?:numeric|decimal)(?:\((\d+)(?:, ?(\d+))?\))?$")
_TIMESTAMP = re.compile(r"^timestamp(?:\((\d)\))?(?: (with|without) time zone)?$")
_TIMESTAMPTZ = re.compile(r"^timestamptz(?:\((\d)\))?$")
_TIME = re.compile(r"^time(?:\((\d)\))?(?: without time zone)?$")
_DEFAULT_PRECISION = 6  # a timestamp without (p) keeps microseconds
_MAX_DECIMAL = 38  # decimal128's precision

# Arrow's spelling of a type back to the type (str(pa.DataType) is what a manifest records);
# pa.type_for_alias knows every spelling but these two parameterised ones.
_ARROW_DECIMAL = re.compile(r"^decimal(128|256)\((\d+), ?(-?\d+)\)$")
_ARROW_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")


class UnsupportedTypeError(TypeError):
    """A column whose Postgres type has no agreed Arrow type; the message names the type (and
    the column, when known)."""

    def __init__(self, pg_type: str, column: str | None = None) -> None:
        where = f"column {column}: " if column else ""
        super().__init__(f"{where}no Arrow type agreed for Postgres type {pg_type!r}")
        self.pg_type = pg_type
        self.column = column


@dataclass(frozen=True)
class PgType:
    """A Postgres type reduced to what the pipeline needs of it. `sql` spells it the way
    `format_type()` prints it, so it can go straight into DDL."""

    family: str  # one of FAMILIES
    size: int | None = None  # int/float bits, numeric precision, timestamp/time precision
    scale: int | None = None  # numeric scale
    other: str = ""  # the spelling of a type outside the families

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
        if self.family == "time":
            precision = "" if self.size is None else f"({self.size})"
            return f"time{precision} without time zone"
        if self.family == "other":
            return self.other
        return self.family  # text, boolean, date, uuid, json, jsonb


def parse(pg_type: str) -> PgType | None:
    """The `PgType` a type name spells, or None for a type outside the families (an interval,
    an array, an enum or a domain by its own name…)."""
    name = " ".join(pg_type.strip().lower().split())
    name = _ALIASES.get(name, name)
    if name in _INT_BITS:
        return PgType("int", _INT_BITS[name])
    if name in _FLOAT_BITS:
        return PgType("float", _FLOAT_BITS[name])
    if name in _PLAIN:
        return PgType(name)
    if _CHARACTER.match(name):
        return PgType("text")
    if match := _NUMERIC.match(name):
        if match.group(1) is None:
            return PgType("numeric")
        return PgType("numeric", int(match.group(1)), int(match.group(2) or 0))
    if match := _TIMESTAMPTZ.match(name):
        return PgType("timestamptz", int(match.group(1) or _DEFAULT_PRECISION))
    if match := _TIMESTAMP.match(name):
        family = "timestamptz" if match.group(2) == "with" else "timestamp"
        return PgType(family, int(match.group(1) or _DEFAULT_PRECISION))
    if match := _TIME.match(name):
        return PgType("time", None if match.group(1) is None else int(match.group(1)))
    return None


def arrow_type(pg_type: str, *, enum: bool = False) -> pa.DataType:
    """The Arrow type for a column of Postgres type `pg_type` (as `format_type()` prints it;
    for a domain, its base type's). An enum's values are its labels: text."""
    if enum:
        return pa.string()
    parsed = parse(pg_type)
    arrow = None if parsed is None else _arrow(parsed)
    if arrow is None:
        raise UnsupportedTypeError(pg_type)
    return arrow


def _arrow(t: PgType) -> pa.DataType | None:
    if t.family == "int":
        return {16: pa.int16(), 32: pa.int32(), 64: pa.int64()}[t.size or 32]
    if t.family == "float":
        return pa.float32() if t.size == 32 else pa.float64()
    if t.family == "numeric":
        if t.size is None or t.size > _MAX_DECIMAL:
            return pa.string()
        return pa.decimal128(t.size, t.scale or 0)
    if t.family in ("timestamp", "timestamptz"):
        unit = "ms" if (t.size if t.size is not None else _DEFAULT_PRECISION) <= 3 else "us"
        return pa.timestamp(unit, tz="UTC" if t.family == "timestamptz" else None)
    if t.family == "boolean":
        return pa.bool_()
    if t.family == "date":
        return pa.date32()
    if t.family in ("text", "time", "uuid", "json", "jsonb"):
        return pa.string()
    return None


def arrow_from_text(text: str) -> pa.DataType:
    """The Arrow type `str()` of which is `text` ("int32", "decimal128(10, 2)",
    "timestamp[us, tz=UTC]"); ValueError when pyarrow has no such type."""
    text = text.strip()
    if match := _ARROW_DECIMAL.match(text):
        make = pa.decimal128 if match.group(1) == "128" else pa.decimal256
        return make(int(match.group(2)), int(match.group(3)))
    if match := _ARROW_TIMESTAMP.match(text):
        return pa.timestamp(match.group(1), tz=match.group(2))
    return pa.type_for_alias(text)


@dataclass(frozen=True)
class Column:
    """A table column, as every step describes it and as a manifest lists it.

    `arrow_type` is `str()` of the Arrow type the column's values travel as (what the manifest
    records); left out, it is derived from `pg_type`, which then must be a type `arrow_type()`
    knows (so a domain's or an enum's column passes it explicitly)."""

    name: str
    pg_type: str  # format_type(): "integer", "numeric(10,2)", '"TransactionType"', a domain's name
    nullable: bool
    arrow_type: str = ""

    def __post_init__(self) -> None:
        if not self.arrow_type:
            try:
                derived = arrow_type(self.pg_type)
            except UnsupportedTypeError:
                raise UnsupportedTypeError(self.pg_type, self.name) from None
            object.__setattr__(self, "arrow_type", str(derived))

    @property
    def arrow(self) -> pa.DataType:
        return arrow_from_text(self.arrow_type)

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow, nullable=self.nullable)
