"""`COPY … TO STDOUT` over a pg8000 connection, read in bulk: blocks of whole rows.

pg8000's `run(sql, stream=f)` dispatches every protocol message through Python: one
`CopyData` message per row, ~3 µs each: 2.5× the time of psql's COPY of the same rows, with
nothing parsed yet (BENCHMARKS.md). This reader sends the same simple-query message on the
same connection but reads the socket a megabyte at a time and strips the 5-byte message
headers of each read at once with numpy (`copy_data_run`), so the client keeps up with the
server. Every other message (CommandComplete, ErrorResponse, NoticeResponse, ParameterStatus,
ReadyForQuery) goes to pg8000's own handler, so the connection's state is exactly what `run`
would have left. For a parser that skips empty lines, `padded=True` does less still: the
socket reads into each block's own buffer and the headers are overwritten with newlines where
they are (`blank_copy_data_run`), so no row byte is copied again (cutting them out cost more
than finding them).

It uses pg8000's connection internals (`send_QUERY`, `_sock`, `message_types`), which is why
pyproject.toml pins pg8000 to one minor version; tests/runtime/test_copy_out.py pins the
behaviour (on unix sockets: a TLS connection reads through the same file object, untested
here).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
from pg8000.core import Context
from pg8000.exceptions import InterfaceError

READ_BYTES = 1 << 20  # socket read size
BLOCK_BYTES = 16 << 20  # yield once this many bytes of rows are gathered

_COPY_DATA = 0x64  # d
_COPY_OUT_RESPONSE = 0x48  # H
_COPY_DONE = 0x63  # c
_READY_FOR_QUERY = 0x5A  # Z
_NEWLINE = 0x0A
_unpack_length = struct.Struct("!i").unpack_from
_unpack_columns = struct.Struct("!h").unpack_from  # CopyOutResponse: after the format byte


def copy_out(
    conn: Any, sql: str, *, block_bytes: int = BLOCK_BYTES, padded: bool = False
) -> Iterator[Any]:
    """Run `sql` (a `COPY … TO STDOUT`) on `conn` and yield its output as blocks of whole rows
    (each at least `block_bytes` except the last), so every block parses on its own.

    Blocks are bytes-like. `padded=True` (for CSV or text output read by a parser that skips
    empty lines, as `runtime.pg_arrow.parse_copy_csv` does) leaves the rows where the socket
    put them and overwrites the protocol's framing between them with newlines instead of cutting
    it out: each row is then preceded by a few empty lines, and no byte is copied or moved. A
    COPY of a single column falls back to the plain rows, as there an empty line is a row (a
    NULL).

    A server error raises pg8000's DatabaseError after the server is ready again (the
    connection stays usable, the transaction aborted, as with `run`). If the caller stops
    reading early, or the socket fails, the connection is closed: it is mid-COPY and cannot
    be used again."""
    conn.send_QUERY(sql)
    conn._sock.flush()
    context = Context(None)
    finished = False
    try:
        if padded:
            yield from _padded_blocks(conn, context, block_bytes)
        else:
            yield from _blocks(conn, context, block_bytes)
        finished = True
    finally:
        if not finished:
            _abandon(conn)
    if context.error is not None:
        raise context.error


def _blocks(
    conn: Any, context: Context, block_bytes: int, head: bytes | bytearray = b""
) -> Iterator[bytes]:
    """The COPY's blocks, rows only; `head`: bytes already read from the socket."""
    readinto = conn._sock.readinto1
    handlers = conn.message_types
    pending: list[Any] = []  # bytes-like pieces of rows, joined into each yielded block
    pending_bytes = 0
    buf = bytearray(max(2 * READ_BYTES, len(head)))  # reused: the socket reads straight into it
    buf[: len(head)] = head
    filled, pos = len(head), 0
    wanted = READ_BYTES  # more when one message is bigger than a read
    read = not head  # what was read already is looked at before reading more
    while True:
        if pos:  # keep the unread tail (a cut message) at the front
            buf[: filled - pos] = buf[pos:filled]
            filled -= pos
            pos = 0
        if len(buf) < filled + wanted:
            buf.extend(bytes(filled + wanted - len(buf)))
        if read:
            filled = _fill(readinto, buf, filled, filled + wanted)
        read = True
        wanted = READ_BYTES
        ready = False
        vectorised = True
        while pos + 5 <= filled:
            if vectorised and buf[pos] == _COPY_DATA:
                rows, pos = copy_data_run(buf, pos, filled)
                pending.append(rows)
                pending_bytes += len(rows)
                # What stopped the run (a "\nd" in a value, a message cut by the read, the
                # end of the COPY) goes message by message for the rest of this read.
                vectorised = False
                continue
            # One message; a message cut by the read waits for the next read.
            end = pos + 1 + _unpack_length(buf, pos + 1)[0]
            if end > filled:
                wanted = max(READ_BYTES, end - pos)
                break
            code = buf[pos]
            if code == _COPY_DATA:
                pending.append(buf[pos + 5 : end])
                pending_bytes += end - pos - 5
            elif code not in (_COPY_OUT_RESPONSE, _COPY_DONE):
                handler = handlers.get(bytes(buf[pos : pos + 1]))
                if handler is None:
                    raise InterfaceError(f"unexpected protocol message {buf[pos : pos + 1]!r}")
                handler(bytes(buf[pos + 5 : end]), context)
                ready = code == _READY_FOR_QUERY
            pos = end
        if pending_bytes >= block_bytes or (ready and pending):
            yield b"".join(pending)
            pending.clear()
            pending_bytes = 0
        if ready:
            return


def _padded_blocks(conn: Any, context: Context, block_bytes: int) -> Iterator[Any]:
    """`_blocks`, but each block is a buffer of its own that the socket read into, with its
    framing overwritten by newlines: no byte of a row is copied after the socket's read."""
    readinto = conn._sock.readinto1
    handlers = conn.message_types
    capacity = block_bytes + 2 * READ_BYTES
    buf = bytearray(capacity)
    filled = pos = 0  # before pos: rows and blanked framing only
    rows = False  # the block holds a row
    wanted = READ_BYTES
    while True:
        if len(buf) < filled + wanted:
            buf.extend(bytes(filled + wanted - len(buf)))
        filled = _fill(readinto, buf, filled, filled + wanted)
        wanted = READ_BYTES
        ready = False
        vectorised = True
        while pos + 5 <= filled:
            code = buf[pos]
            if vectorised and code == _COPY_DATA:
                pos = blank_copy_data_run(buf, pos, filled)
                rows = True
                vectorised = False  # as in _blocks: the rest of this read message by message
                continue
            end = pos + 1 + _unpack_length(buf, pos + 1)[0]
            if end > filled:
                wanted = max(READ_BYTES, end - pos)
                break
            if code == _COPY_OUT_RESPONSE and _unpack_columns(buf, pos + 6)[0] == 1:
                # One column: there an empty line is a row (a NULL), so blank lines cannot
                # pad it. Nothing before this message is a row.
                yield from _blocks(conn, context, block_bytes, buf[pos:filled])
                return
            if code == _COPY_DATA:
                buf[pos : pos + 5] = _FIVE_NEWLINES
                rows = True
            else:
                if code not in (_COPY_OUT_RESPONSE, _COPY_DONE):
                    handler = handlers.get(bytes(buf[pos : pos + 1]))
                    if handler is None:
                        raise InterfaceError(f"unexpected protocol message {buf[pos : pos + 1]!r}")
                    handler(bytes(buf[pos + 5 : end]), context)
                    ready = code == _READY_FOR_QUERY
                buf[pos:end] = b"\n" * (end - pos)
            pos = end
        if rows and (pos >= block_bytes or ready):
            block = memoryview(buf)[:pos]
            tail = buf[pos:filled]  # a message cut by the read: the next block's first bytes
            buf = bytearray(max(capacity, len(tail) + wanted))
            buf[: len(tail)] = tail
            filled, pos, rows = len(tail), 0, False
            yield block
        if ready:
            return


def _fill(readinto: Any, buf: bytearray, filled: int, target: int) -> int:
    """Read into `buf[filled:target]`; returns the new fill. Stops early when the stream has
    paused on what looks like its last message (ReadyForQuery): the server sends ~8 KB at a
    time and numpy pays per call, but waiting for more after the end would wait forever. A
    row that merely ends like a ReadyForQuery only makes this read shorter."""
    with memoryview(buf) as view:
        while filled < target:
            got = readinto(view[filled:target])
            if not got:
                raise InterfaceError("network error: the server closed the connection mid-COPY")
            filled += got
            if filled >= 6 and buf[filled - 6 : filled - 1] == _READY_FOR_QUERY_HEAD:
                break
    return filled


_READY_FOR_QUERY_HEAD = b"Z\x00\x00\x00\x05"  # then one status byte, and nothing after it
_HEADER = np.arange(5)
_FIVE_NEWLINES = b"\n" * 5


def copy_data_run(buf: bytes | bytearray, pos: int, end: int | None = None) -> tuple[Any, int]:
    """The rows of the complete CopyData messages in `buf[pos:end]` (`pos` is a message's
    first byte), header-free (a bytes-like numpy array), and where they end; nothing and
    `pos` when not even the first is complete.

    Each message is `d`, a 4-byte length and one row ending in a newline, so every header is
    a `d` right after a newline. Candidates are found with numpy and accepted only along the
    chain of lengths from `pos`: a "\\nd" inside a quoted value is a candidate the chain
    skips, and the run stops before it, so a wrong split is impossible; the caller reads on
    message by message."""
    seg, starts, stop = _proven_run(buf, pos, end)
    if not stop:
        return b"", pos
    keep = np.ones(stop, dtype=bool)
    keep[(starts[:, None] + _HEADER).ravel()] = False
    return seg[:stop][keep], pos + stop


def blank_copy_data_run(buf: bytearray, pos: int, end: int | None = None) -> int:
    """`copy_data_run`, but the run's message headers are overwritten with newlines in `buf`
    itself, its rows left where they are; returns where the run ends (`pos`: no complete
    message)."""
    seg, starts, stop = _proven_run(buf, pos, end)  # a view of buf: writable
    for byte in range(5):
        seg[starts + byte] = _NEWLINE
    return pos + stop


def _proven_run(buf: bytes | bytearray, pos: int, end: int | None) -> tuple[Any, Any, int]:
    """(`buf[pos:end]` as an array, the run's message starts in it, where the run ends in it:
    0 when not even the first message is complete)."""
    size = (len(buf) if end is None else end) - pos
    if size < 5:
        return np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.int64), 0
    seg = np.frombuffer(buf, dtype=np.uint8, count=size, offset=pos)
    # Candidates: the first byte, and every "d" right after a newline.
    after = np.flatnonzero(seg[: size - 5] == _NEWLINE) + 1
    starts = np.concatenate(([0], after[seg[after] == _COPY_DATA]))
    lengths = (
        (seg[starts + 1].astype(np.int64) << 24)
        | (seg[starts + 2].astype(np.int64) << 16)
        | (seg[starts + 3].astype(np.int64) << 8)
        | seg[starts + 4]
    )
    ends = starts + 1 + lengths
    # Proven: the first message, and each one the previous one's length leads to.
    broken = np.flatnonzero(ends[:-1] != starts[1:])
    proven = int(broken[0]) + 1 if len(broken) else len(starts)
    complete = int(np.searchsorted(ends[:proven], size, side="right"))
    if complete == 0:
        return seg, starts[:0], 0
    return seg, starts[:complete], int(ends[complete - 1])


def _abandon(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()
