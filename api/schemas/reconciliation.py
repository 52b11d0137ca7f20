"""Reconciliation wire types (api.md 3.13, 4): the run request, ReconciliationRun and -Item."""

from typing import Annotated, Literal

from msgspec import Meta

from api.schemas.common import RequestStruct, ResponseStruct, format_time
from common.money import format_signed_amount
from reconcile import ItemRow, RunRow

__all__ = [
    "Drift",
    "ReconciliationItem",
    "ReconciliationRun",
    "RunCreate",
    "RunSummary",
    "item_out",
    "run_out",
]

SourceName = Literal["ledger", "stellar", "trustless_work", "airtm"]


class RunCreate(RequestStruct, frozen=True):
    """``POST /reconciliation/runs``: which sources to check (default: all enabled)."""

    sources: Annotated[list[SourceName], Meta(min_length=1, max_length=4)] | None = None


class RunSummary(ResponseStruct, frozen=True):
    """What a run checked."""

    items_checked: int
    matched: int
    discrepancies: int


class Drift(ResponseStruct, frozen=True):
    """Signed drift (ledger - external) of a source and account class."""

    currency: str
    source: str
    account_class: str
    amount: str


class ReconciliationRun(ResponseStruct, frozen=True):
    """A reconciliation run."""

    id: str
    status: str
    trigger: str
    sources: list[str]
    ledger_as_of: str
    stellar_ledger: int | None
    summary: RunSummary
    drift: list[Drift]
    error: str | None
    created_at: str
    finished_at: str | None


class ReconciliationItem(ResponseStruct, frozen=True):
    """One check of a run."""

    id: str
    run_id: str
    source: str
    kind: str
    status: str
    account_class: str
    resource_type: str | None
    resource_id: str | None
    account_id: str | None
    external_ref: str | None
    ledger_amount: str | None
    external_amount: str | None
    difference: str | None
    detail: str
    created_at: str


def _signed(minor: int | None) -> str | None:
    return None if minor is None else format_signed_amount(minor)


def run_out(row: RunRow) -> ReconciliationRun:
    """Render a run."""
    return ReconciliationRun(
        id=row.id,
        status=row.status,
        trigger=row.trigger,
        sources=row.sources,
        ledger_as_of=format_time(row.ledger_as_of),
        stellar_ledger=row.stellar_ledger,
        summary=RunSummary(
            items_checked=row.items_checked, matched=row.matched, discrepancies=row.discrepancies
        ),
        drift=[
            Drift(
                currency=str(entry["currency"]),
                source=str(entry["source"]),
                account_class=str(entry["account_class"]),
                amount=format_signed_amount(int(entry["amount"])),
            )
            for entry in row.drift
        ],
        error=row.error,
        created_at=format_time(row.created_at),
        finished_at=None if row.finished_at is None else format_time(row.finished_at),
    )


def item_out(row: ItemRow) -> ReconciliationItem:
    """Render an item (amounts signed decimal strings)."""
    return ReconciliationItem(
        id=row.id,
        run_id=row.run_id,
        source=row.source,
        kind=row.kind,
        status=row.status,
        account_class=row.account_class,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        account_id=row.account_id,
        external_ref=row.external_ref,
        ledger_amount=_signed(row.ledger_amount),
        external_amount=_signed(row.external_amount),
        difference=_signed(row.difference),
        detail=row.detail,
        created_at=format_time(row.created_at),
    )
