"""Run every benchmark and print one table, then one JSON object with every figure.

Each benchmark runs as a subprocess (its own PostgreSQL, its own event loop), in turn, with
``--quick`` passed on; its last output line is its JSON figures. Where a benchmark measures a
baseline in the same run on the same PostgreSQL (the hand-written SQL ledger, the bare
one-INSERT Litestar endpoint, events without audit or webhooks, PostgreSQL's own COPY), the table
shows it and the ratio. The goals are issue 7's, on a 2-core machine.

The last line printed is one JSON object: every benchmark's figures (a key two benchmarks share
is prefixed with the benchmark's name), plus ``hot_tps`` (= ``hot_batch1000_tps``: transfers per
second into one account, batched as group commit posts), ``bench_seconds`` per benchmark,
``wall_s`` and ``errors`` (a failed benchmark's message; the others still run). Exits 1 if any
benchmark failed. ``--quick`` takes under 5 minutes on a 2-core machine.
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# In running order (``reports`` includes ``reconcile_bench``'s figures).
BENCHES = ["ledger", "api", "events", "webhooks", "audit", "deposit_monitor", "reports"]
TIMEOUT_S = {True: 240, False: 1800}


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure, its baseline (same run) and its goal, if any."""

    name: str
    key: str
    unit: str
    baseline: str | None = None
    ratio_key: str | None = None
    goal: str = ""
    met: Callable[[float], bool] | None = None  # applied to the ratio when there is one


ROWS = [
    Row("ledger single, 16 conns", "single_c16_tps", "tr/s", "baseline_single_c16_tps"),
    Row("ledger batch 100", "batch100_tps", "tr/s", "baseline_single_c16_tps"),
    Row(
        "ledger batch 1000",
        "batch1000_tps",
        "tr/s",
        "baseline_single_c16_tps",
        goal=">= 40,000 tr/s",
    ),
    Row("ledger hot account, single", "hot_single_c16_tps", "tr/s", "baseline_hot_single_c16_tps"),
    Row("ledger hot account, batch 1000", "hot_tps", "tr/s", "baseline_hot_single_c16_tps"),
    Row(
        "API single posting, 32 clients",
        "api_posting_rps",
        "req/s",
        "bare_rps",
        "api_posting_ratio_vs_bare",
        ">= 1.5x bare",
        lambda ratio: ratio >= 1.5,
    ),
    Row("API single posting p99", "api_posting_p99_ms", "ms", "bare_p99_ms"),
    Row(
        "API create+reserve (ratio per request)",
        "create_reserve_rps",
        "pairs/s",
        "bare_rps",
        "create_reserve_ratio_vs_bare",
    ),
    Row("API create+reserve p50", "create_reserve_p50_ms", "ms"),
    Row("API create+reserve p99", "create_reserve_p99_ms", "ms", goal="< 50 ms"),
    Row("order lifecycles, 32 clients", "lifecycles_per_s", "/s"),
    Row("order lifecycle p50", "lifecycle_p50_ms", "ms"),
    Row("order lifecycle p99", "lifecycle_p99_ms", "ms"),
    Row("SSE fan-out deliveries", "sse_events_per_s", "ev/s"),
    Row("SSE latency p99", "sse_latency_p99_ms", "ms"),
    Row(
        "events, 5 webhook endpoints",
        "events_per_s_5_endpoints",
        "ev/s",
        "events_per_s_no_endpoint",
    ),
    Row("webhook deliveries", "deliveries_per_s", "/s"),
    Row("events + audit, one chain", "audit_one_chain_tps", "tx/s", "baseline_event_only_tps"),
    Row("events + audit, own chains", "audit_own_chains_tps", "tx/s", "baseline_event_only_tps"),
    Row("deposit monitor credits", "deposits_per_s", "/s"),
    Row("reconcile {reconcile_wallets:,} wallets+escrows", "reconcile_seconds", "s"),
    Row("export CSV, {export_rows:,} postings", "csv_rows_per_s", "rows/s", "copy_csv_rows_per_s"),
    Row("export Parquet", "parquet_rows_per_s", "rows/s", "copy_csv_rows_per_s"),
]
# Goals on absolute figures (the ratio-based ones are in ROWS).
ABSOLUTE_GOALS: dict[str, Callable[[float], bool]] = {
    "batch1000_tps": lambda value: value >= 40_000,
    "hot_tps": lambda value: value >= 10_000,
    "create_reserve_p99_ms": lambda value: value < 50,
}
GOAL_TEXT = {"hot_tps": ">= 10,000 tr/s"}


def run_bench(name: str, quick: bool) -> tuple[dict[str, Any], float, str | None]:
    """Run ``bench/<name>.py``; its figures, its wall time and an error message or None."""
    command = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if quick else [])
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S[quick], check=False
        )
    except subprocess.TimeoutExpired:
        return {}, time.monotonic() - started, f"timed out after {TIMEOUT_S[quick]} s"
    elapsed = time.monotonic() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {}, elapsed, f"exit {done.returncode}: {detail[:300]}"
    try:
        figures = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}, elapsed, f"last line is not JSON: {lines[-1][:200]}"
    return dict(figures), elapsed, None


def merge(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One flat dict; a key two benchmarks share gets each benchmark's name as a prefix."""
    seen: dict[str, int] = {}
    for figures in results.values():
        for key in figures:
            seen[key] = seen.get(key, 0) + 1
    merged: dict[str, Any] = {}
    for bench, figures in results.items():
        for key, value in figures.items():
            merged[key if seen[key] == 1 else f"{bench}_{key}"] = value
    if "hot_batch1000_tps" in merged:
        merged["hot_tps"] = merged["hot_batch1000_tps"]
    return merged


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:#.3g}"


def table(figures: dict[str, Any]) -> str:
    """The table: name, figure, unit, baseline, ratio, goal (with met / NOT met)."""
    header = ("benchmark", "figure", "unit", "baseline", "ratio", "goal")
    lines = [header]
    for row in ROWS:
        value = figures.get(row.key)
        try:
            name = row.name.format(**figures)
        except (KeyError, ValueError):
            name = row.name.split(" {")[0].rstrip(",")
        if not isinstance(value, int | float):
            lines.append((name, "-", row.unit, "", "", row.goal))
            continue
        base = figures.get(row.baseline) if row.baseline else None
        ratio = figures.get(row.ratio_key) if row.ratio_key else None
        if ratio is None and isinstance(base, int | float) and base:
            ratio = value / base
        goal = row.goal or GOAL_TEXT.get(row.key, "")
        check = row.met if row.met is not None else ABSOLUTE_GOALS.get(row.key)
        if goal and check is not None:
            subject = ratio if row.met is not None else value
            goal += " (met)" if subject is not None and check(subject) else " (NOT met)"
        lines.append(
            (
                name,
                _number(value),
                row.unit,
                _number(base) if isinstance(base, int | float) else "",
                f"{ratio:.2f}x" if ratio is not None else "",
                goal,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    aligned = [
        "  ".join(
            cell.rjust(width) if 0 < i < 5 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    aligned.insert(1, "-" * len(aligned[0]))
    return "\n".join(aligned)


def main() -> None:
    """Run every benchmark, print the table and, last, the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark's --quick")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these")
    args = parser.parse_args()
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in args.only or BENCHES:
        print(f"running bench/{name}.py{' --quick' if args.quick else ''} ...", flush=True)
        results[name], seconds[name], error = run_bench(name, args.quick)
        print(f"  {seconds[name]:.1f} s{f'  FAILED: {error}' if error else ''}", flush=True)
        if error is not None:
            errors[name] = error
    figures = merge(results)
    figures["bench_seconds"] = {name: round(value, 1) for name, value in seconds.items()}
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures["quick"] = args.quick
    figures["errors"] = errors
    print()
    print(table(figures))
    print(f"\nwall time {figures['wall_s']:.0f} s")
    print(json.dumps(figures))
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
