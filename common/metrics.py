"""Prometheus metrics recorded below the API: ledger postings, provider calls, webhook deliveries.

They live on prometheus-client's default registry, which ``GET /metrics`` renders, and here in
``common`` because ``ledger``, ``providers`` and ``flows`` may not import ``api``. Every label
takes values from a small set fixed by our code (transfer codes, result names, provider names,
path templates with ids replaced): never a user, order or key id.

Names (api.md 3.1): ``offerhub_ledger_transfers_total{code,result}``,
``offerhub_ledger_create_transfers_duration_seconds{code}``,
``offerhub_provider_requests_total{provider,operation,outcome}``,
``offerhub_provider_request_duration_seconds{provider,operation}``,
``offerhub_webhook_deliveries_total{result}``.
"""

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from typing import Final

from prometheus_client import Counter, Histogram

__all__ = [
    "GROUP_COMMIT_FALLBACKS",
    "GROUP_COMMIT_SIZE",
    "LEDGER_BATCH_DURATION",
    "LEDGER_TRANSFERS",
    "PROVIDER_DURATION",
    "PROVIDER_REQUESTS",
    "WEBHOOK_DELIVERIES",
    "ProviderCall",
    "path_template",
    "provider_call",
    "record_transfer_failure",
    "record_transfers",
]

# Latency buckets (seconds) for database statements and provider calls alike.
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

LEDGER_TRANSFERS: Final = Counter(
    "offerhub_ledger_transfers",
    "Transfers submitted to ledger.create_transfers, by transfer code and result (ok, exists, "
    "exceeds_credits, ...; raced or invariant_violation when the whole batch was refused). "
    "Counted when decided: the caller's transaction may still roll back.",
    ["code", "result"],
)
LEDGER_BATCH_DURATION: Final = Histogram(
    "offerhub_ledger_create_transfers_duration_seconds",
    "Time spent in one ledger.create_transfers call (lock, plan, insert), by transfer code "
    "(mixed when a batch carries several codes).",
    ["code"],
    buckets=_BUCKETS,
)
GROUP_COMMIT_SIZE: Final = Histogram(
    "offerhub_group_commit_size",
    "Members (request transactions) that shared one database transaction and commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
GROUP_COMMIT_FALLBACKS: Final = Counter(
    "offerhub_group_commit_fallbacks",
    "Group members run again in a transaction of their own: a lock wait, a conflict, or a "
    "group refused at commit.",
)
PROVIDER_REQUESTS: Final = Counter(
    "offerhub_provider_requests",
    "HTTP requests to providers, by provider, operation (method and path template) and outcome "
    "(ok, client_error, rate_limited, server_error, unexpected_status, timeout, transport_error).",
    ["provider", "operation", "outcome"],
)
PROVIDER_DURATION: Final = Histogram(
    "offerhub_provider_request_duration_seconds",
    "Duration of HTTP requests to providers, answered or not.",
    ["provider", "operation"],
    buckets=_BUCKETS,
)
WEBHOOK_DELIVERIES: Final = Counter(
    "offerhub_webhook_deliveries",
    "Outbound webhook delivery attempts, by result (succeeded, failed: will retry, "
    "exhausted: gave up).",
    ["result"],
)

# A path segment that is a plain word ("payins", "by-code", "update-from-txHash") is kept; any
# other segment (account ids, hashes, UUIDs, emails, our 32-character ids) becomes "{id}".
_WORD: Final = re.compile(
    r"[a-z]{1,20}(?:[A-Z][a-z]{1,20})*(?:[-_][a-z]{1,20}(?:[A-Z][a-z]{1,20})*)*"
)
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def path_template(path: str) -> str:
    """``/accounts/GABC.../payments`` into ``/accounts/{id}/payments``: a bounded label value."""
    path = path.split("?", 1)[0]
    segments = [
        segment if not segment or _WORD.fullmatch(segment) else "{id}"
        for segment in path.split("/")
    ]
    return "/".join(segments)


def _outcome_of_status(status_code: int) -> str:
    if 200 <= status_code < 300:
        return "ok"
    if status_code == 429:
        return "rate_limited"
    if 400 <= status_code < 500:
        return "client_error"
    if status_code >= 500:
        return "server_error"
    return "unexpected_status"


def _outcome_of_error(error: Exception) -> str:
    # httpx's timeouts do not derive from TimeoutError; common does not import httpx.
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        return "timeout"
    return "transport_error"


class ProviderCall:
    """The request being measured; the client reports the answer's status with :meth:`answered`."""

    def __init__(self) -> None:
        self.status_code: int | None = None

    def answered(self, status_code: int) -> None:
        """Record the HTTP status the provider answered with."""
        self.status_code = status_code


def _observe_provider(provider: str, operation: str, outcome: str, elapsed_s: float) -> None:
    PROVIDER_REQUESTS.labels(provider, operation, outcome).inc()
    PROVIDER_DURATION.labels(provider, operation).observe(elapsed_s)


@contextlib.contextmanager
def provider_call(provider: str, method: str, path: str) -> Iterator[ProviderCall]:
    """Count and time one provider request sent inside the block.

    The block calls ``call.answered(status)`` once the answer arrived; an exception leaving the
    block counts as a timeout or transport error and propagates. A cancelled request (the caller
    went away) is not counted: it says nothing about the provider.
    """
    verb = method.upper() if method.upper() in _METHODS else "OTHER"
    operation = f"{verb} {path_template(path)}"
    call = ProviderCall()
    started = time.perf_counter()
    try:
        yield call
    except Exception as error:
        _observe_provider(
            provider, operation, _outcome_of_error(error), time.perf_counter() - started
        )
        raise
    status = call.status_code
    outcome = "transport_error" if status is None else _outcome_of_status(status)
    _observe_provider(provider, operation, outcome, time.perf_counter() - started)


def _batch_code(codes: Sequence[str]) -> str:
    return codes[0] if codes and all(code == codes[0] for code in codes) else "mixed"


def record_transfers(codes: Sequence[str], results: Sequence[str], elapsed_s: float) -> None:
    """Count one decided ``create_transfers`` batch: one result per transfer, in order."""
    for code, result in zip(codes, results, strict=True):
        LEDGER_TRANSFERS.labels(code, result).inc()
    LEDGER_BATCH_DURATION.labels(_batch_code(codes)).observe(elapsed_s)


def record_transfer_failure(codes: Sequence[str], result: str, elapsed_s: float) -> None:
    """Count a batch the ledger refused as a whole (``raced``, ``invariant_violation``)."""
    for code in codes:
        LEDGER_TRANSFERS.labels(code, result).inc()
    LEDGER_BATCH_DURATION.labels(_batch_code(codes)).observe(elapsed_s)
