"""A million postings export in CSV and Parquet with bounded memory (design.md 8).

The ledger is seeded through its own insert trigger (bench/reports.py ``seed_postings``). Each
export streams the general ledger from one snapshot while the process's resident memory is
sampled after every chunk: the growth stays far below the size of the output, and it stops
growing after the first chunks (it is not proportional to the rows written).
"""

import asyncio
import tempfile
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api.exports import PARQUET_ROW_GROUP_ROWS, ExportFormat, export_chunks
from bench.reports import resident_bytes, seed_postings
from ledger import reports
from ledger.report_types import ENTRIES_COLUMNS
from tests.db.conftest import create_marketplace

pytestmark = [pytest.mark.db, pytest.mark.slow]

POSTINGS = 1_000_000
MB = 2**20


class Samples:
    """Resident memory growth after each chunk, with the rows written so far."""

    def __init__(self) -> None:
        self.baseline = resident_bytes()
        self.rows = 0
        self.points: list[tuple[int, int]] = []

    def __call__(self, rows: int) -> None:
        self.rows += rows
        self.points.append((self.rows, resident_bytes() - self.baseline))

    def peak(self, *, after_rows: int = 0, until_rows: int | None = None) -> int:
        """The largest growth sampled in a span of the export."""
        return max(
            growth
            for rows, growth in self.points
            if rows >= after_rows and (until_rows is None or rows <= until_rows)
        )


async def _export(
    pool: asyncpg.Pool, marketplace_id: str, export_format: ExportFormat, out: Path
) -> tuple[Samples, int]:
    """Stream the whole general ledger to ``out``; the samples and the bytes written."""
    samples, written = Samples(), 0
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        position = await reports.snapshot_position(conn, marketplace_id)
        report = reports.entries_report(
            conn,
            marketplace_id,
            position,
            start=datetime(1970, 1, 1, tzinfo=UTC),
            end=datetime(9999, 1, 1, tzinfo=UTC),
        )
        with out.open("wb") as file:
            async for data in export_chunks(report, export_format, on_rows=samples):
                written += len(data)
                file.write(data)
    return samples, written


def _assert_bounded(samples: Samples) -> None:
    assert samples.rows == POSTINGS
    # Both exports run at once in this process, so each sample holds both: measured about
    # 140 MB together, where the CSV file alone is about 230 MB...
    assert samples.peak() < 192 * MB
    # ...and flat: the last half of the rows adds nothing beyond the first quarter's level.
    early = samples.peak(until_rows=POSTINGS // 4)
    late = samples.peak(after_rows=POSTINGS // 2)
    assert late - early < 48 * MB, (early // MB, late // MB)


async def test_a_million_postings_stream_in_bounded_memory(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        marketplace_id = await create_marketplace(conn)
        await seed_postings(conn, marketplace_id, POSTINGS)
        await conn.execute("ANALYZE")
    with tempfile.TemporaryDirectory() as folder:
        csv_path, parquet_path = Path(folder) / "gl.csv", Path(folder) / "gl.parquet"
        # Both at once: the two exports share the two cores (database and encoder).
        exports: list[Awaitable[tuple[Samples, int]]] = [
            _export(pool, marketplace_id, ExportFormat.CSV, csv_path),
            _export(pool, marketplace_id, ExportFormat.PARQUET, parquet_path),
        ]
        (csv_samples, csv_bytes), (parquet_samples, parquet_bytes) = await asyncio.gather(*exports)
        _assert_bounded(csv_samples)
        _assert_bounded(parquet_samples)
        assert csv_bytes > 200 * MB  # what holding the export in memory would have cost
        assert parquet_bytes == parquet_path.stat().st_size

        with csv_path.open("rb") as file:
            lines = sum(1 for _ in file)
        assert lines == POSTINGS + 1  # the header
        metadata = pq.read_metadata(parquet_path)
        assert metadata.num_rows == POSTINGS
        groups = [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]
        assert groups[:-1] == [PARQUET_ROW_GROUP_ROWS] * (len(groups) - 1)
        assert sum(groups) == POSTINGS
        schema = pq.read_schema(parquet_path)
        assert schema.names == [column.name for column in ENTRIES_COLUMNS]
        assert schema.field("amount").type == pa.decimal128(38, 7)
        assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
