"""The event catalog against the code that emits, and the ``types``/``resources`` filters.

The code is scanned, not run: every string literal shaped like ``<catalog prefix>.<name>`` in
``flows/``, ``api/`` and ``reconcile/`` is an event type someone emits (or filters on), so it
must be in the catalog; and every catalog type must appear somewhere as such a literal, or
nothing emits it (api.md 6.2 promises that every type is emitted).
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from flows.event_catalog import (
    EVENT_TYPES,
    RESOURCE_TYPES,
    EventFilter,
    FilterError,
    parse_resources,
    parse_types,
)

ROOT: Final = Path(__file__).resolve().parents[2]
SCANNED: Final = ("flows", "api", "reconcile")
CATALOG_MODULE: Final = ROOT / "flows" / "event_catalog.py"
_EVENT_SHAPED: Final = re.compile(r"^([a-z_]+)\.([a-z_]+)$")
_PREFIXES: Final = frozenset(name.split(".", 1)[0] for name in EVENT_TYPES)


def _modules() -> Iterator[Path]:
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != CATALOG_MODULE:
                yield path


def _literals(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _emit_type_literals(path: Path) -> Iterator[str]:
    """``type="..."`` literals of calls to ``emit`` (or a local ``_emit`` wrapper)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None) or ""
        if not name.endswith("emit"):
            continue
        for keyword in node.keywords:
            if keyword.arg == "type" and isinstance(keyword.value, ast.Constant):
                yield str(keyword.value.value)


def _event_shaped_literals() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in _modules():
        for text in _literals(path):
            shaped = _EVENT_SHAPED.match(text)
            if shaped and shaped.group(1) in _PREFIXES:
                found.setdefault(text, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_event_type_in_the_code_is_in_the_catalog() -> None:
    found = _event_shaped_literals()
    unknown = {name: files for name, files in found.items() if name not in EVENT_TYPES}
    assert unknown == {}


def test_every_literal_type_passed_to_emit_is_in_the_catalog() -> None:
    emitted = {name for path in _modules() for name in _emit_type_literals(path)}
    assert emitted  # the scan sees the emitters at all
    assert emitted - EVENT_TYPES == set()


def test_every_catalog_type_has_an_emitter() -> None:
    assert EVENT_TYPES - set(_event_shaped_literals()) == set()


def test_the_catalog_types_are_well_formed() -> None:
    assert all(re.fullmatch(r"[a-z_]+\.[a-z_]+", name) for name in EVENT_TYPES)
    assert {"order", "user", "balance", "reconciliation_run"} <= RESOURCE_TYPES


@pytest.mark.parametrize(
    ("raw", "exact", "prefixes"),
    [
        (None, None, None),
        ("*", None, None),
        ("order.created,*", None, None),
        ("order.created", ("order.created",), None),
        ("order.*, user.created ,order.*", ("user.created",), ("order.",)),
        ("balance.*,withdrawal.*", None, ("balance.", "withdrawal.")),
    ],
)
def test_types_parse_into_exact_names_and_prefixes(
    raw: str | None, exact: tuple[str, ...] | None, prefixes: tuple[str, ...] | None
) -> None:
    assert parse_types(raw) == (exact, prefixes)


@pytest.mark.parametrize(
    "raw", ["order.nope", "orders.*", "order", "", "order.created,", "ORDER.CREATED", "order.*.*"]
)
def test_unknown_or_malformed_types_are_refused(raw: str) -> None:
    with pytest.raises(FilterError):
        parse_types(raw)


def test_resources_split_into_types_and_ids() -> None:
    order_id = "ord_" + "A" * 32
    assert parse_resources(f"order,{order_id},dispute") == (("dispute", "order"), (order_id,))
    for bad in ("orders", "ord_short", "", "order,,user"):
        with pytest.raises(FilterError):
            parse_resources(bad)


def test_a_filter_matches_types_and_resources_with_and_between_them() -> None:
    user_id = "usr_" + "b" * 32
    event_filter = EventFilter(
        exact_types=("user.created",),
        type_prefixes=("order.",),
        resource_types=("order",),
        resource_ids=(user_id,),
    )
    assert event_filter.matches("order.created", "order", "ord_x")
    assert event_filter.matches("user.created", "user", user_id)
    assert not event_filter.matches("user.created", "user", "usr_other")
    assert not event_filter.matches("escrow.funded", "order", "ord_x")
    assert EventFilter().matches("anything.at_all", "thing", "id")
