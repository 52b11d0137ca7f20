"""The Horizon-compatible HTTP app of the sandbox (providers.md 5.2), over a ``SandboxChain``.

Routes, under a configurable prefix (``/_sandbox/horizon`` in ``offerhub serve``):
``GET /accounts/{id}``, ``GET /accounts/{id}/payments``, ``POST /transactions`` (form
``tx=``), ``GET /transactions/{hash}``, ``GET /transactions/{hash}/payments``,
``GET /ledgers`` (latest only), ``GET /fee_stats`` and ``GET /friendbot?addr=``.
The SSE variant of the payments route is not implemented.

A small ASGI gate in front of the Litestar routes applies injected faults for service
``"horizon"`` (``latency_ms``, ``hang``, ``status:<code>``, ``fail_before_apply`` and
``applied_response_lost``); a 504 always carries Horizon's ``timeout`` problem.
"""

from typing import Any, Final, cast
from urllib.parse import parse_qs

import msgspec
from litestar import Litestar, Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.enums import ScopeType
from stellar_sdk import StrKey

from providers.sandbox import chain_json
from providers.sandbox.chain import SandboxChain, Submission
from providers.sandbox.faults import FaultRules
from providers.sandbox.http_faults import (
    ASGIApp,
    FaultReplies,
    Receive,
    Scope,
    Send,
    apply_http_fault,
)

__all__ = ["SERVICE", "HorizonSandboxSettings", "create_horizon_app"]

SERVICE: Final = "horizon"
_STATE_KEY: Final = "chain"
_HAL: Final = "application/hal+json"
_PROBLEM: Final = "application/problem+json"
_ENCODER: Final = msgspec.json.Encoder()
_PAGE_LIMIT_MAX: Final = 200
_TX_FAILED_DETAIL: Final = (
    "The transaction failed when submitted to the network; extras.result_codes says why."
)
_STATUS_TITLES: Final = {
    429: ("rate_limit_exceeded", "Rate Limit Exceeded"),
    500: ("server_error", "Internal Server Error"),
    502: ("bad_gateway", "Bad Gateway"),
    503: ("service_unavailable", "Service Unavailable"),
    504: ("timeout", "Timeout"),
}


class HorizonSandboxSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the simulated Horizon is reached."""

    path_prefix: str = ""
    hang_s: float = 120.0


class _Problem(Exception):
    """Raised by handlers to answer a Horizon problem document."""

    def __init__(self, status: int, kind: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.document = chain_json.problem_json(kind, title, status, detail)
        self.status = status


def _chain(request: Request[Any, Any, Any]) -> SandboxChain:
    chain = request.app.state[_STATE_KEY]
    assert isinstance(chain, SandboxChain)
    return chain


def _path(request: Request[Any, Any, Any], name: str) -> str:
    """A path parameter, read from the request (handler-signature injection is deprecated)."""
    return str(request.path_params[name])


def _base(request: Request[Any, Any, Any]) -> str:
    return str(request.base_url).rstrip("/")


def _json(document: object, status_code: int = 200, media_type: str = _HAL) -> Response[bytes]:
    return Response(_ENCODER.encode(document), status_code=status_code, media_type=media_type)


def _not_found() -> _Problem:
    return _Problem(
        404, "not_found", "Resource Missing", "The resource at the url requested was not found."
    )


def _bad_request(detail: str) -> _Problem:
    return _Problem(400, "bad_request", "Bad Request", detail)


def _submission_response(submission: Submission, base: str) -> Response[bytes]:
    """200 with the tx resource, or 400 ``transaction_failed``/``transaction_malformed``."""
    if submission.kind == "malformed":
        problem = chain_json.problem_json(
            "transaction_malformed",
            "Transaction Malformed",
            400,
            submission.detail,
            envelope_xdr=submission.envelope_xdr,
        )
        return _json(problem, 400, _PROBLEM)
    if submission.tx is not None and submission.tx.successful:
        return _json(chain_json.tx_json(submission.tx, base))
    if submission.tx is not None:  # in a ledger, but tx_failed: the stored result
        result_xdr, codes = submission.tx.result_xdr, submission.tx.result_codes
    else:  # refused before any ledger
        assert submission.result is not None
        result_xdr, codes = submission.result.result_xdr, submission.result.codes
    problem = chain_json.problem_json(
        "transaction_failed",
        "Transaction Failed",
        400,
        _TX_FAILED_DETAIL,
        envelope_xdr=submission.envelope_xdr,
        result_xdr=result_xdr,
        codes=codes,
    )
    return _json(problem, 400, _PROBLEM)


@get("/accounts/{account_id:str}")
async def get_account(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /accounts/{id}``: 404 ``not_found`` until the account is created."""
    account_id = _path(request, "account_id")
    entry = _chain(request).account(account_id)
    if entry is None:
        raise _not_found()
    return _json(chain_json.account_json(entry, _base(request)))


@post("/transactions", status_code=200)
async def submit_transaction(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``POST /transactions`` with the form field ``tx``."""
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    envelopes = form.get("tx", [])
    if len(envelopes) != 1:
        raise _bad_request("the form field tx is required")
    return _submission_response(_chain(request).submit(envelopes[0]), _base(request))


@get("/transactions/{tx_hash:str}")
async def get_transaction(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /transactions/{hash}``: failed transactions too; 404 when not in a ledger."""
    tx_hash = _path(request, "tx_hash")
    record = _chain(request).transaction(tx_hash.lower())
    if record is None:
        raise _not_found()
    return _json(chain_json.tx_json(record, _base(request), as_hash=tx_hash.lower()))


def _page_query(request: Request[Any, Any, Any]) -> tuple[dict[str, str], int | None, int]:
    """Validate cursor/order/limit/include_failed/join the way Horizon does (400 otherwise)."""
    params = request.query_params
    query = {
        "cursor": params.get("cursor", ""),
        "order": params.get("order", "asc"),
        "limit": params.get("limit", "10"),
        "include_failed": params.get("include_failed", "false"),
    }
    if params.get("join"):
        query["join"] = params.get("join", "")
    if query["order"] not in {"asc", "desc"}:
        raise _bad_request("order must be asc or desc")
    if not query["limit"].isdigit() or not 1 <= int(query["limit"]) <= _PAGE_LIMIT_MAX:
        raise _bad_request(f"limit must be 1..{_PAGE_LIMIT_MAX}")
    if query["include_failed"] not in {"true", "false"}:
        raise _bad_request("include_failed must be true or false")
    if query.get("join", "transactions") != "transactions":
        raise _bad_request("join accepts only transactions")
    cursor_text = query["cursor"]
    if cursor_text and not cursor_text.isdigit() and cursor_text != "now":
        raise _bad_request("cursor must be a paging token")
    if not cursor_text:
        del query["cursor"]
    cursor = int(cursor_text) if cursor_text.isdigit() else None
    if cursor_text == "now":
        # "now" pages start after the newest operation.
        cursor = max((r.id for r in _chain(request).operations), default=0)
    return query, cursor, int(query["limit"])


def _payments(
    request: Request[Any, Any, Any], path: str, *, account_id: str | None, tx_hash: str | None
) -> Response[bytes]:
    chain = _chain(request)
    query, cursor, limit = _page_query(request)
    records = chain.payments(
        account_id=account_id,
        tx_hash=tx_hash,
        cursor=cursor,
        order="desc" if query["order"] == "desc" else "asc",
        limit=limit,
        include_failed=query["include_failed"] == "true",
    )
    base = _base(request)
    join = query.get("join") == "transactions"
    documents = [
        chain_json.op_json(r, base, chain.transaction(r.tx_hash) if join else None) for r in records
    ]
    return _json(chain_json.page_json(documents, base, path, query))


@get("/accounts/{account_id:str}/payments")
async def account_payments(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /accounts/{id}/payments``: cursor paging over payment-like operations."""
    account_id = _path(request, "account_id")
    return _payments(
        request, f"/accounts/{account_id}/payments", account_id=account_id, tx_hash=None
    )


@get("/transactions/{tx_hash:str}/payments")
async def transaction_payments(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /transactions/{hash}/payments``."""
    tx_hash = _path(request, "tx_hash")
    record = _chain(request).transaction(tx_hash.lower())
    if record is None:
        raise _not_found()
    return _payments(
        request, f"/transactions/{tx_hash}/payments", account_id=None, tx_hash=record.hash
    )


@get("/ledgers")
async def ledgers(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /ledgers``: only the latest ledger is kept, whatever the query asks."""
    chain = _chain(request)
    return _json(
        chain_json.ledger_page_json(chain.ledger, chain.closed_at, chain.base_fee, _base(request))
    )


@get("/fee_stats")
async def fee_stats(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /fee_stats``."""
    chain = _chain(request)
    return _json(
        chain_json.fee_stats_json(chain.ledger, chain.base_fee), media_type="application/json"
    )


@get("/friendbot")
async def friendbot(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``GET /friendbot?addr=G...``: 10,000 XLM; fails (``op_already_exists``) if it exists."""
    address = request.query_params.get("addr", "")
    if not StrKey.is_valid_ed25519_public_key(address):
        raise _bad_request("addr must be a G... account id")
    return _submission_response(_chain(request).friendbot(address), _base(request))


def _problem_handler(request: Request[Any, Any, Any], exc: _Problem) -> Response[bytes]:
    return _json(exc.document, exc.status, _PROBLEM)


async def _send_problem(send: Send, status: int, detail: str, retry_after_s: int | None) -> None:
    kind, title = _STATUS_TITLES.get(status, ("server_error", "Internal Server Error"))
    body = _ENCODER.encode(chain_json.problem_json(kind, title, status, detail))
    headers = [(b"content-type", _PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Gate:
    """Injected faults in front of the routes."""

    def __init__(self, app: ASGIApp, faults: FaultRules, settings: HorizonSandboxSettings) -> None:
        self._app = app
        self._faults = faults
        self._settings = settings
        self._prefix = settings.path_prefix.rstrip("/")
        self._replies = FaultReplies(
            send_error=_send_problem,
            hang_s=settings.hang_s,
            before_apply_status=504,
            before_apply_message="timed out before the request was handled",
            response_lost_message="timed out waiting for the result",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        path = scope["path"].removeprefix(self._prefix) or "/"
        fault = self._faults.match(SERVICE, scope["method"], path)
        if fault is not None and await apply_http_fault(
            fault, self._app, scope, receive, send, replies=self._replies
        ):
            return
        await self._app(scope, receive, send)


def create_horizon_app(
    chain: SandboxChain, *, faults: FaultRules, settings: HorizonSandboxSettings | None = None
) -> ASGIApp:
    """Build the Horizon-compatible ASGI app over ``chain``; faults are read from ``faults``."""
    settings = settings or HorizonSandboxSettings()
    router = Router(
        path=settings.path_prefix.rstrip("/") or "/",
        route_handlers=[
            get_account,
            account_payments,
            submit_transaction,
            get_transaction,
            transaction_payments,
            ledgers,
            fee_stats,
            friendbot,
        ],
    )
    app = Litestar(
        route_handlers=[router],
        state=State({_STATE_KEY: chain}),
        exception_handlers={_Problem: _problem_handler},
        openapi_config=None,
    )
    return _Gate(cast(ASGIApp, app), faults, settings)
