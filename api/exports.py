"""Writers of streamed exports (api.md 3.12): a report's row chunks in, bytes chunks out.

CSV is RFC 4180 (CRLF line ends, minimal quoting), UTF-8, with a header row; amounts are the
canonical decimal strings of ``common.money`` and times RFC 3339 with milliseconds. Parquet has
``DECIMAL(38,7)`` amounts, ``TIMESTAMP(MILLIS, UTC)`` times, UTF-8 strings and row groups of
65,536 rows: each group is encoded as soon as it is full and its bytes leave at once, so memory
holds at most one row group whatever the size of the report. Both writers only pull the next
chunk of rows when the previous bytes were taken (back-pressure from the consumer).
"""

import array
import asyncio
import contextlib
import csv
import enum
import io
import sys
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from common.money import format_amount, format_signed_amount
from common.times import format_time
from ledger.report_types import Column, ColumnKind, Report, Row

__all__ = [
    "MEDIA_TYPES",
    "PARQUET_ROW_GROUP_ROWS",
    "ExportFormat",
    "export_chunks",
    "export_filename",
    "parquet_schema",
]

PARQUET_ROW_GROUP_ROWS: Final = 65_536
_SCALE: Final = 7
_DECIMAL: Final = pa.decimal128(38, _SCALE)
_TIMESTAMP: Final = pa.timestamp("ms", tz="UTC")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class ExportFormat(enum.StrEnum):
    """The streamed formats."""

    CSV = "csv"
    PARQUET = "parquet"


MEDIA_TYPES: Final = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}

RowsCallback = Callable[[int], None]


def export_filename(report: Report, export_format: ExportFormat) -> str:
    """``<report>-<as_of>.<ext>``, safe in a Content-Disposition header."""
    stamp = format_time(report.as_of).replace(":", "").replace("-", "").replace(".", "")
    return f"{report.name}-{stamp}.{export_format.value}"


def export_chunks(
    report: Report, export_format: ExportFormat, *, on_rows: RowsCallback | None = None
) -> AsyncGenerator[bytes, None]:
    """The report encoded in ``export_format``, chunk by chunk; ``on_rows(n)`` after each
    chunk of ``n`` rows is encoded (progress)."""
    if export_format is ExportFormat.CSV:
        return _csv_chunks(report, on_rows)
    return _parquet_chunks(report, on_rows, PARQUET_ROW_GROUP_ROWS)


# -- CSV -----------------------------------------------------------------------------------------


class _Memo:
    """A cell renderer with a one-entry memo: consecutive rows often repeat a value (both
    postings share their transfer's time, pending counters stay at zero), and rendering times
    and amounts is most of the cost of a CSV row."""

    def __init__(self, render: Callable[[Any], str]) -> None:
        self._render = render
        self._last: Any = None
        self._text: str | None = None

    def __call__(self, value: Any) -> str | None:
        if value is None:
            return None
        if value != self._last or self._text is None:
            self._last, self._text = value, self._render(value)
        return self._text


def _converters(columns: Sequence[Column]) -> list[tuple[int, Callable[[Any], str | None]]]:
    """What each non-text column needs; text cells go as they are (``None`` is an empty cell
    to the csv module)."""
    renderers: dict[ColumnKind, Callable[[Any], str]] = {
        ColumnKind.AMOUNT: format_amount,
        ColumnKind.SIGNED_AMOUNT: format_signed_amount,
        ColumnKind.TIME: format_time,
    }
    return [
        (index, _Memo(renderers[column.kind]))
        for index, column in enumerate(columns)
        if column.kind in renderers
    ]


def _csv_rows(
    rows: Sequence[Row], converters: list[tuple[int, Callable[[Any], str | None]]]
) -> list[list[Any]]:
    out = []
    for row in rows:
        cells = list(row)
        for index, convert in converters:
            cells[index] = convert(cells[index])
        out.append(cells)
    return out


async def _csv_chunks(report: Report, on_rows: RowsCallback | None) -> AsyncGenerator[bytes, None]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([column.name for column in report.columns])
    converters = _converters(report.columns)
    yield buffer.getvalue().encode()
    async with contextlib.aclosing(report.chunks):
        async for rows in report.chunks:
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(_csv_rows(rows, converters))
            if on_rows is not None:
                on_rows(len(rows))
            yield buffer.getvalue().encode()


# -- Parquet -------------------------------------------------------------------------------------


def _arrow_type(kind: ColumnKind) -> pa.DataType:
    if kind in (ColumnKind.AMOUNT, ColumnKind.SIGNED_AMOUNT):
        return _DECIMAL
    if kind is ColumnKind.TIME:
        return _TIMESTAMP
    return pa.string()


def parquet_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of an export: decimals, UTC millisecond timestamps and strings."""
    return pa.schema([pa.field(column.name, _arrow_type(column.kind)) for column in columns])


def _decimal_array(values: Sequence[int | None]) -> pa.Array:
    """Integer minor units as DECIMAL(38,7) without going through ``Decimal`` objects: the
    unscaled value of a decimal128 is the minor amount itself, stored as two little-endian
    64-bit words (low, then the sign extension)."""
    if sys.byteorder != "little" or any(
        value is not None and not _INT64_MIN <= value <= _INT64_MAX for value in values
    ):
        return _decimal_array_slow(values)
    count = len(values)
    words = array.array("q", bytes(16 * count))
    words[0::2] = array.array("q", [value or 0 for value in values])
    words[1::2] = array.array("q", [-1 if (value or 0) < 0 else 0 for value in values])
    null_count = sum(value is None for value in values)
    validity = None
    if null_count:
        validity = pa.array([value is not None for value in values], pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(
        _DECIMAL, count, [validity, pa.py_buffer(words)], null_count=null_count
    )


def _decimal_array_slow(values: Iterable[int | None]) -> pa.Array:
    from decimal import Decimal  # noqa: PLC0415 - only for amounts past the int64 range

    return pa.array(
        [None if value is None else Decimal(value).scaleb(-_SCALE) for value in values], _DECIMAL
    )


def _record_batch(
    schema: pa.Schema, columns: Sequence[Column], rows: Sequence[Row]
) -> pa.RecordBatch:
    """One chunk of rows as an Arrow record batch (columnar, compact)."""
    arrays = []
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        if column.kind in (ColumnKind.AMOUNT, ColumnKind.SIGNED_AMOUNT):
            arrays.append(_decimal_array(values))
        elif column.kind is ColumnKind.TIME:
            micros = pa.array(values, pa.timestamp("us", tz="UTC"))
            arrays.append(micros.cast(_TIMESTAMP, safe=False))  # ms on the wire too
        else:
            arrays.append(pa.array(values, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class _Drain(io.RawIOBase):
    """A write-only sink whose bytes are taken out as they come; ``tell`` keeps counting, so
    the offsets Parquet records in its footer stay right."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        """Always: this is a sink."""
        return True

    def write(self, data: Any) -> int:
        """Keep ``data`` until :meth:`take`."""
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        """Bytes written so far."""
        return self._position

    def take(self) -> bytes:
        """The bytes written since the last call."""
        taken = b"".join(self._parts)
        self._parts.clear()
        return taken


async def _parquet_chunks(
    report: Report, on_rows: RowsCallback | None, row_group_rows: int
) -> AsyncGenerator[bytes, None]:
    schema = parquet_schema(report.columns)
    sink = _Drain()
    writer = pq.ParquetWriter(sink, schema, compression="snappy")
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        async with contextlib.aclosing(report.chunks):
            async for rows in report.chunks:
                if rows:
                    pending.append(_record_batch(schema, report.columns, rows))
                    pending_rows += len(rows)
                if on_rows is not None:
                    on_rows(len(rows))
                while pending_rows >= row_group_rows:
                    table = pa.Table.from_batches(pending, schema=schema)
                    group, rest = table.slice(0, row_group_rows), table.slice(row_group_rows)
                    # Encoding a row group takes a while: off the event loop.
                    await asyncio.to_thread(
                        writer.write_table, group, row_group_size=row_group_rows
                    )
                    pending, pending_rows = rest.to_batches(), rest.num_rows
                    yield sink.take()
        if pending_rows:
            table = pa.Table.from_batches(pending, schema=schema)
            await asyncio.to_thread(writer.write_table, table, row_group_size=row_group_rows)
    finally:
        writer.close()
    yield sink.take()
