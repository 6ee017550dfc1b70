"""runtime.copy_out reads COPY output exactly as pg8000's own `stream=` path does, only faster.

Real PostgreSQL throughout: the reader relies on pg8000's connection internals and on the
server's message framing, and these tests are what pins both."""

from __future__ import annotations

import io
import struct

import pg8000
import pyarrow as pa
import pytest

from runtime import db
from runtime.copy_out import blank_copy_data_run, copy_data_run, copy_out
from runtime.pg_arrow import parse_copy_csv

# Values chosen to break a naive splitter: "\nd" inside a quoted value looks like the start of a
# CopyData message, and so does a row whose last value ends in "Z\0\0\0\x05I"-like bytes.
AWKWARD = [None, "", "plain", "end\ndone", "x\nd", "\nd\nd", "Zoë 東京", '"q", c', "\\N", "d"]
COPY_SQL = "copy (select id, note, amount, at from copy_probe order by id) to stdout (format csv)"


class _Collect(io.RawIOBase):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.data += data
        return len(data)


@pytest.fixture
def probe(isolated):
    """A table of 60,000 rows (several megabytes: many socket reads), awkward values mixed in."""
    conn = isolated.totesys()
    conn.run(
        "create table copy_probe (id integer primary key, note text, amount numeric(10,2),"
        " at timestamp(3))"
    )
    conn.run(
        "insert into copy_probe select i,"
        " (array[null, '', 'plain', E'end\\ndone', E'x\\nd', E'\\nd\\nd', 'Zoë 東京',"
        "  '\"q\", c', '\\N', 'd'])[1 + i % 10],"
        " case when i % 7 = 0 then null else (i % 100000) / 100.0 end,"
        " timestamp '2024-01-01' + i * interval '1.001 second'"
        " from generate_series(1, 60000) as i"
    )
    yield conn
    db.close(conn)  # some tests leave it closed


def pg8000_output(conn, sql: str) -> bytes:
    sink = _Collect()
    conn.run(sql, stream=sink)
    return bytes(sink.data)


def test_output_is_byte_for_byte_what_pg8000_streams(probe):
    expected = pg8000_output(probe, COPY_SQL)
    got = b"".join(copy_out(probe, COPY_SQL))
    assert got == expected
    assert expected.count(b"\n") > 60_000  # the awkward newlines are in there


def test_every_block_holds_whole_rows(probe):
    blocks = list(copy_out(probe, COPY_SQL, block_bytes=64 << 10))
    assert len(blocks) >= 2  # a block is at least one socket read (READ_BYTES)
    # Rows are numbered 1..60000 in order: every block starts at a row's first field.
    starts = [int(block.split(b",", 1)[0]) for block in blocks]
    assert starts == sorted(starts) and starts[0] == 1
    assert all(block.endswith(b"\n") for block in blocks)


def test_the_connection_is_left_as_run_would_leave_it(probe):
    probe.run("begin")
    rows = b"".join(copy_out(probe, COPY_SQL))
    assert rows
    # Still inside the same transaction, and ready for the next statement.
    assert probe.run("select count(*) from copy_probe") == [[60_000]]
    probe.run("rollback")


def test_a_server_error_mid_copy_raises_and_the_connection_survives(probe):
    failing = (
        "copy (select id, 1 / (30000 - id) from copy_probe order by id) to stdout (format csv)"
    )
    with pytest.raises(pg8000.DatabaseError, match="division by zero"):
        for _ in copy_out(probe, failing, block_bytes=4096):
            pass
    assert probe.run("select 1") == [[1]]


def test_stopping_early_closes_the_connection(probe):
    blocks = copy_out(probe, COPY_SQL, block_bytes=4096)
    next(blocks)
    blocks.close()
    with pytest.raises(pg8000.InterfaceError):
        probe.run("select 1")


def _message(code: bytes, payload: bytes) -> bytes:
    return code + struct.pack("!i", len(payload) + 4) + payload


def test_a_run_of_messages_is_stripped_to_its_rows():
    rows = [b"1,a\n", b"2,\n", b'3,""\n']
    buf = b"".join(_message(b"d", row) for row in rows) + _message(b"c", b"")
    data, stop = copy_data_run(buf, 0)
    assert bytes(data) == b"".join(rows)
    assert buf[stop : stop + 1] == b"c"  # the run stops at the first other message


def test_a_message_cut_by_the_read_waits():
    whole = _message(b"d", b"1,a\n") + _message(b"d", b"2,b\n")
    cut = whole + _message(b"d", b"3,c\n")[:6]
    data, stop = copy_data_run(cut, 0)
    assert (bytes(data), stop) == (b"1,a\n2,b\n", len(whole))


def test_a_newline_d_inside_a_value_is_never_taken_for_a_message():
    tricky = b'1,"x\nd\x00\x00\x00\x05y"\n'
    first = _message(b"d", b"0,a\n") + _message(b"d", tricky)
    buf = first + _message(b"d", b"2,b\n")
    # The chain of lengths skips the "\nd" in the value; the run stops after that message and
    # the caller reads the rest message by message.
    data, stop = copy_data_run(buf, 0)
    assert (bytes(data), stop) == (b"0,a\n" + tricky, len(first))


def test_a_row_bigger_than_a_socket_read_comes_through_whole(probe):
    probe.run("insert into copy_probe values (60001, repeat('tote ', 700000), 1, now())")
    assert b"".join(copy_out(probe, COPY_SQL)) == pg8000_output(probe, COPY_SQL)


def _parsed(blocks, schema):
    return pa.concat_tables([parse_copy_csv(block, schema) for block in blocks])


PROBE_SCHEMA = pa.schema(
    [("id", pa.int32()), ("note", pa.string()), ("amount", pa.decimal128(10, 2)),
     ("at", pa.timestamp("ms"))]
)  # fmt: skip


def test_padded_blocks_parse_to_exactly_the_rows(probe):
    expected = parse_copy_csv(pg8000_output(probe, COPY_SQL), PROBE_SCHEMA)
    blocks = list(copy_out(probe, COPY_SQL, block_bytes=64 << 10, padded=True))
    assert len(blocks) >= 2
    got = _parsed(blocks, PROBE_SCHEMA)
    assert got.equals(expected)
    assert got.num_rows == 60_000 and got.column("note").null_count == 6_000
    # Each block is rows and newlines only: it parses on its own, in order.
    firsts = [parse_copy_csv(b, PROBE_SCHEMA).column("id")[0].as_py() for b in blocks]
    assert firsts == sorted(firsts) and firsts[0] == 1


def test_a_padded_copy_of_one_column_keeps_its_null_rows(probe):
    sql = "copy (select note from copy_probe order by id) to stdout (format csv)"
    expected = pg8000_output(probe, sql)
    blocks = list(copy_out(probe, sql, block_bytes=64 << 10, padded=True))
    assert b"".join(bytes(b) for b in blocks) == expected  # no padding: a blank line is a row
    notes = _parsed(blocks, pa.schema([("note", pa.string())])).column("note")
    assert len(notes) == 60_000 and notes.null_count == 6_000


def test_a_single_column_null_row_is_a_row():
    table = parse_copy_csv(b'x\n\n""\ny\n', pa.schema([("a", pa.string())]))
    assert table.column("a").to_pylist() == ["x", None, "", "y"]


def test_a_server_error_mid_padded_copy_raises_and_the_connection_survives(probe):
    failing = (
        "copy (select id, 1 / (30000 - id) from copy_probe order by id) to stdout (format csv)"
    )
    with pytest.raises(pg8000.DatabaseError, match="division by zero"):
        for _ in copy_out(probe, failing, block_bytes=4096, padded=True):
            pass
    assert probe.run("select 1") == [[1]]


def test_blanking_a_run_overwrites_only_its_headers():
    rows = [b"1,a\n", b"2,\n", b'3,""\n']
    buf = bytearray(b"".join(_message(b"d", row) for row in rows) + _message(b"c", b""))
    _, stop = copy_data_run(bytes(buf), 0)
    assert blank_copy_data_run(buf, 0) == stop
    assert bytes(buf[:stop]) == b"".join(b"\n" * 5 + row for row in rows)
    assert buf[stop : stop + 1] == b"c"
