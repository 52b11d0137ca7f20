"""The Trustless Work-compatible HTTP app of the sandbox (providers.md 5.3).

Routes, under a configurable prefix (``/_sandbox/trustless-work`` in ``offerhub serve``):
the single- and multi-release build routes of providers.md 1.4, ``POST
/helper/send-transaction``, ``GET /helper/get-escrow-by-contract-ids``, ``GET
/helper/get-multiple-escrow-balance`` and ``POST /indexer/update-from-txHash``.

The ``trustless_work_gate.Gate`` in front of the Litestar routes applies injected faults,
checks ``x-api-key`` (401) and the optional 50 requests / 60 s limiter (429). Errors are NestJS
bodies ``{statusCode, message, error}`` carrying the contract's message texts.
"""

from typing import Any, Final, TypeVar, cast

import msgspec
from litestar import Litestar, Request, Response, Router, get, post
from litestar.datastructures import State

from providers.sandbox import trustless_work_actions as actions
from providers.sandbox import trustless_work_payouts as payouts
from providers.sandbox.faults import FaultRules
from providers.sandbox.trustless_work_actions import Action, EscrowNotFound
from providers.sandbox.trustless_work_escrows import ContractRuleError
from providers.sandbox.trustless_work_gate import SERVICE, TAMPER_KEY, ASGIApp, Gate
from providers.sandbox.trustless_work_state import TrustlessWorkState
from providers.sandbox.trustless_work_views import TrustlessWorkError, encode, error_body
from providers.trustless_work import bodies

__all__ = ["SERVICE", "TrustlessWorkSandboxSettings", "create_trustless_work_app"]

T = TypeVar("T")
_STATE_KEY: Final = "trustless_work"
_JSON: Final = "application/json"
_BALANCE_ADDRESSES_MAX: Final = 20


class TrustlessWorkSandboxSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the simulated Trustless Work is reached; ``rate_limit=None`` disables the limiter."""

    path_prefix: str = ""
    api_key: str = "sandbox.trustless-work-key"
    rate_limit: int | None = None
    rate_window_s: int = 60
    hang_s: float = 120.0


def _state(request: Request[Any, Any, Any]) -> TrustlessWorkState:
    state = request.app.state[_STATE_KEY]
    assert isinstance(state, TrustlessWorkState)
    return state


def _json(document: object, status_code: int = 200) -> Response[bytes]:
    return Response(encode(document), status_code=status_code, media_type=_JSON)


async def _decode(request: Request[Any, Any, Any], kind: type[T]) -> T:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.DecodeError as error:
        # NestJS's ValidationPipe answers a list of messages.
        raise _ValidationFailed(str(error)) from error


class _ValidationFailed(Exception):
    """A body that does not have the endpoint's shape."""


def _is_tampered(request: Request[Any, Any, Any]) -> bool:
    return bool(request.scope.get("state", {}).get(TAMPER_KEY))


def _check_type(request: Request[Any, Any, Any], contract_id: str) -> None:
    """A single-release escrow may not be driven through a multi-release route, and back."""
    escrow = _state(request).escrows.get(contract_id)
    route_type = "multi-release" if "/multi-release/" in request.url.path else "single-release"
    if escrow is not None and escrow.escrow_type != route_type:
        raise TrustlessWorkError(400, f"The escrow {contract_id} is not a {route_type} escrow")


def _built(request: Request[Any, Any, Any], action: Action) -> Response[bytes]:
    xdr = _state(request).prepare(action, tampered=_is_tampered(request))
    return _json({"status": "SUCCESS", "unsignedTransaction": xdr}, 201)


@post(["/deployer/single-release", "/deployer/multi-release"], status_code=201)
async def deploy(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a deploy (single- or multi-release by route)."""
    kind: type[bodies.DeploySingleReleaseBody | bodies.DeployMultiReleaseBody]
    if request.url.path.endswith("/multi-release"):
        kind = bodies.DeployMultiReleaseBody
    else:
        kind = bodies.DeploySingleReleaseBody
    body = await _decode(request, kind)
    return _built(request, _state(request).deploy_action(body))


@post(["/escrow/single-release/fund-escrow", "/escrow/multi-release/fund-escrow"], status_code=201)
async def fund_escrow(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a fund (the signer pays)."""
    body = await _decode(request, bodies.FundBody)
    _check_type(request, body.contract_id)
    return _built(request, actions.fund(_state(request).context, body))


@post(
    [
        "/escrow/single-release/change-milestone-status",
        "/escrow/multi-release/change-milestone-status",
    ],
    status_code=201,
)
async def change_milestone_status(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a milestone status change (the service provider signs)."""
    body = await _decode(request, bodies.ChangeMilestoneStatusBody)
    _check_type(request, body.contract_id)
    return _built(request, actions.change_status(_state(request).context, body))


@post(
    ["/escrow/single-release/approve-milestone", "/escrow/multi-release/approve-milestone"],
    status_code=201,
)
async def approve_milestone(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a milestone approval (the approver signs)."""
    body = await _decode(request, bodies.ApproveMilestoneBody)
    _check_type(request, body.contract_id)
    return _built(request, actions.approve(_state(request).context, body))


@post(
    ["/escrow/single-release/release-funds", "/escrow/multi-release/release-milestone-funds"],
    status_code=201,
)
async def release_funds(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a release (the release signer signs)."""
    body = await _decode(request, bodies.ReleaseBody)
    _check_type(request, body.contract_id)
    return _built(request, payouts.release(_state(request).context, body))


@post(
    ["/escrow/single-release/dispute-escrow", "/escrow/multi-release/dispute-milestone"],
    status_code=201,
)
async def dispute_escrow(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build the opening of a dispute (a party other than the resolver signs)."""
    body = await _decode(request, bodies.DisputeBody)
    _check_type(request, body.contract_id)
    return _built(request, payouts.dispute(_state(request).context, body))


@post(
    [
        "/escrow/single-release/resolve-dispute",
        "/escrow/multi-release/resolve-milestone-dispute",
    ],
    status_code=201,
)
async def resolve_dispute(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a dispute resolution (the dispute resolver signs)."""
    body = await _decode(request, bodies.ResolveDisputeBody)
    _check_type(request, body.contract_id)
    return _built(request, payouts.resolve(_state(request).context, body))


@post("/escrow/multi-release/withdraw-remaining-funds", status_code=201)
async def withdraw_remaining_funds(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Build a sweep of what remains in a multi-release escrow."""
    body = await _decode(request, bodies.WithdrawRemainingBody)
    _check_type(request, body.contract_id)
    return _built(request, payouts.resolve(_state(request).context, body))


@post("/helper/send-transaction", status_code=200)
async def send_transaction(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Submit a signed envelope built here."""
    body = await _decode(request, bodies.SendTransactionBody)
    return _json(_state(request).send(body.signed_xdr))


def _array_param(request: Request[Any, Any, Any], name: str) -> list[str]:
    """Both ``name[]=a&name[]=b`` and ``name=a&name=b`` (a lone value arrives as one string)."""
    params = request.query_params
    values = [*params.getall(f"{name}[]", []), *params.getall(name, [])]
    return [str(value) for value in values]


@get("/helper/get-escrow-by-contract-ids")
async def get_escrows(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Escrow objects by contract id; ``validateOnChain=true`` bypasses the indexer lag."""
    contract_ids = _array_param(request, "contractIds")
    if not contract_ids:
        raise TrustlessWorkError(400, "contractIds must contain at least one contract id")
    validate = request.query_params.get("validateOnChain", "false").lower() == "true"
    return _json(_state(request).escrows_json(contract_ids, validate_on_chain=validate))


@get("/helper/get-multiple-escrow-balance")
async def get_balances(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``[{address, balance}]`` for up to 20 contracts."""
    addresses = _array_param(request, "addresses")
    if not 1 <= len(addresses) <= _BALANCE_ADDRESSES_MAX:
        raise TrustlessWorkError(400, f"addresses must hold 1 to {_BALANCE_ADDRESSES_MAX} items")
    return _json(_state(request).balances_json(addresses))


@post("/indexer/update-from-txHash", status_code=200)
async def update_from_tx_hash(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Make the indexer catch up with a transaction."""
    body = await _decode(request, bodies.IndexerBody)
    return _json(_state(request).reindex(body.tx_hash))


def _tw_error(_: Request[Any, Any, Any], error: TrustlessWorkError) -> Response[bytes]:
    return _json(error_body(error.status_code, error.message), error.status_code)


def _rule_error(_: Request[Any, Any, Any], error: ContractRuleError) -> Response[bytes]:
    return _json(error_body(400, str(error)), 400)


def _not_found(_: Request[Any, Any, Any], error: EscrowNotFound) -> Response[bytes]:
    return _json(error_body(404, f"Escrow not found: {error}"), 404)


def _invalid(_: Request[Any, Any, Any], error: _ValidationFailed) -> Response[bytes]:
    return _json(error_body(400, [str(error)]), 400)


def create_trustless_work_app(
    state: TrustlessWorkState,
    *,
    faults: FaultRules,
    settings: TrustlessWorkSandboxSettings | None = None,
) -> ASGIApp:
    """Build the Trustless Work-compatible ASGI app over ``state``."""
    settings = settings or TrustlessWorkSandboxSettings()
    router = Router(
        path=settings.path_prefix.rstrip("/") or "/",
        route_handlers=[
            deploy,
            fund_escrow,
            change_milestone_status,
            approve_milestone,
            release_funds,
            dispute_escrow,
            resolve_dispute,
            withdraw_remaining_funds,
            send_transaction,
            get_escrows,
            get_balances,
            update_from_tx_hash,
        ],
    )
    app = Litestar(
        route_handlers=[router],
        state=State({_STATE_KEY: state}),
        exception_handlers={
            TrustlessWorkError: _tw_error,
            ContractRuleError: _rule_error,
            EscrowNotFound: _not_found,
            _ValidationFailed: _invalid,
        },
        openapi_config=None,
    )
    return Gate(
        cast(ASGIApp, app),
        state.chain.clock,
        faults,
        path_prefix=settings.path_prefix,
        api_key=settings.api_key,
        rate_limit=settings.rate_limit,
        rate_window_s=settings.rate_window_s,
        hang_s=settings.hang_s,
    )
