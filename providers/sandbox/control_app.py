"""The sandbox's control API (providers.md 5.7): JSON in, JSON out, no auth, loopback only.

Routes under the control URL (``/_sandbox/control``): ``POST /deposits``, ``GET
/accounts/{address}``, ``GET /contracts/{contract_id}``, ``POST
/airtm/payins/{id}/{confirm|cancel|fail}``, ``POST /airtm/payouts/{id}/{complete|fail}``,
``POST /faults``, ``DELETE /faults``, ``POST /clock/advance`` and ``POST /tamper``.
Amounts are decimal strings (``common.money``); errors are ``{"error": "..."}``.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
from litestar import Litestar, Request, Response, Router, delete, get, post
from litestar.datastructures import State
from stellar_sdk import StrKey

from common.money import (
    AmountFormatError,
    format_amount,
    format_signed_amount,
    parse_amount,
    parse_signed_amount,
)
from providers.sandbox.airtm_records import ENCODER, AirtmError, render_payin, render_payout
from providers.sandbox.airtm_state import AirtmState
from providers.sandbox.chain import SandboxChain
from providers.sandbox.faults import FaultRules
from providers.sandbox.trustless_work_state import TrustlessWorkState
from providers.sandbox.trustless_work_views import flags_json

__all__ = ["SandboxControl", "create_control_app"]

_STATE_KEY: Final = "control"
_JSON: Final = "application/json"
_SERVICES: Final = frozenset({"horizon", "trustless_work", "airtm"})


@dataclass
class SandboxControl:
    """What the control routes drive; ``after_airtm`` delivers due webhooks (may be a no-op)."""

    chain: SandboxChain
    trustless_work: TrustlessWorkState
    airtm: AirtmState
    faults: FaultRules
    after_airtm: Callable[[], Awaitable[None]]


class DepositBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /deposits``."""

    address: str
    amount: str
    asset: Literal["USDC", "XLM"] = "USDC"
    memo: str | None = None
    ops: int = 1


class FaultBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /faults``; ``route`` is a path prefix inside the service."""

    service: str
    fault: str
    method: str = "*"
    route: str = "/"
    count: int = 1


class AdvanceBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /clock/advance``; seconds are not money, so an int is enough."""

    seconds: int


class TamperBody(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /tamper``; ``usdc_delta`` is a signed decimal string."""

    address: str
    usdc_delta: str


class ControlError(Exception):
    """A refused control request."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def _control(request: Request[Any, Any, Any]) -> SandboxControl:
    control = request.app.state[_STATE_KEY]
    assert isinstance(control, SandboxControl)
    return control


def _path(request: Request[Any, Any, Any], name: str) -> str:
    return str(request.path_params[name])


def _json(document: object, status_code: int = 200) -> Response[bytes]:
    return Response(ENCODER.encode(document), status_code=status_code, media_type=_JSON)


async def _decode(request: Request[Any, Any, Any], kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(await request.body(), type=kind)
    except msgspec.DecodeError as error:
        raise ControlError(400, str(error)) from error


def _amount(text: str, *, signed: bool = False) -> int:
    try:
        return parse_signed_amount(text) if signed else parse_amount(text)
    except AmountFormatError as error:
        raise ControlError(400, f"amount: {error}") from error


@post("/deposits", status_code=200)
async def deposits(request: Request[Any, Any, Any]) -> Response[bytes]:
    """An external deposit from the outside world through the normal pipeline."""
    body: DepositBody = await _decode(request, DepositBody)
    amount = _amount(body.amount)
    if amount <= 0 or body.ops < 1:
        raise ControlError(400, "amount must be positive and ops at least 1")
    if not StrKey.is_valid_ed25519_public_key(body.address):
        raise ControlError(400, "address must be a G... account id")
    chain = _control(request).chain
    submission = chain.deposit(body.address, amount, asset=body.asset, memo=body.memo, ops=body.ops)
    if submission.tx is None or submission.hash is None:
        raise ControlError(400, f"the deposit was refused: {submission.result}")
    document: dict[str, Any] = {
        "tx_hash": submission.hash,
        "operation_ids": chain.operation_ids(submission.hash),
        # Extra to 5.7: a deposit to an account without a trustline lands but fails.
        "successful": submission.successful,
    }
    return _json(document)


@get("/accounts/{address:str}")
async def account(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``{address, exists, xlm, usdc, sequence}`` as the simulated chain has them."""
    address = _path(request, "address")
    chain = _control(request).chain
    entry = chain.account(address)
    if entry is None:
        document = {"address": address, "exists": False, "xlm": None, "usdc": None}
        return _json({**document, "sequence": None})
    usdc = chain.usdc_balance(address)
    return _json(
        {
            "address": address,
            "exists": True,
            "xlm": format_amount(entry.xlm),
            "usdc": None if usdc is None else format_amount(usdc),
            "sequence": str(entry.sequence),
        }
    )


@get("/contracts/{contract_id:str}")
async def contract(request: Request[Any, Any, Any]) -> Response[bytes]:
    """``{contract_id, usdc, flags, milestones}``: the live escrow and its on-chain USDC."""
    contract_id = _path(request, "contract_id")
    control = _control(request)
    escrow = control.trustless_work.escrows.get(contract_id)
    if escrow is None:
        raise ControlError(404, f"no contract {contract_id}")
    milestones = [
        {
            "description": m.description,
            "status": m.status,
            "evidence": m.evidence,
            "approved": m.approved,
            "amount": None if m.amount is None else format_amount(m.amount),
            "receiver": m.receiver,
            "flags": flags_json(m.flags),
        }
        for m in escrow.milestones
    ]
    return _json(
        {
            "contract_id": contract_id,
            "usdc": format_amount(control.chain.contract_balance(contract_id)),
            "flags": flags_json(escrow.flags),
            "milestones": milestones,
        }
    )


@get("/airtm/checkout/{payin_id:str}")
async def payin_checkout(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The sandbox's stand-in for Airtm's checkout page (a top-up's ``confirmation_uri``).

    Shows the payin and the two things a payer can do there, as control URLs to POST to.
    """
    control = _control(request)
    payin_id = _path(request, "payin_id")
    record = control.airtm.payin(payin_id)
    actions = str(request.url).rsplit("/airtm/checkout/", 1)[0] + f"/airtm/payins/{payin_id}"
    return _json(
        {
            "payin": render_payin(record),
            "pay": f"POST {actions}/confirm",
            "cancel": f"POST {actions}/cancel",
        }
    )


@post("/airtm/payins/{payin_id:str}/{action:str}", status_code=200)
async def payin_transition(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The payer confirms, cancels or fails a payin; due webhooks are then delivered."""
    control = _control(request)
    payin_id, action = _path(request, "payin_id"), _path(request, "action")
    transitions = {
        "confirm": control.airtm.payer_confirms,
        "cancel": control.airtm.payer_cancels,
        "fail": control.airtm.payer_fails,
    }
    if action not in transitions:
        raise ControlError(404, f"unknown payin action {action!r}")
    record = transitions[action](payin_id)
    await control.after_airtm()
    return _json(render_payin(record))


@post("/airtm/payouts/{payout_id:str}/{action:str}", status_code=200)
async def payout_transition(request: Request[Any, Any, Any]) -> Response[bytes]:
    """A committed payout completes or fails; due webhooks are then delivered."""
    control = _control(request)
    payout_id, action = _path(request, "payout_id"), _path(request, "action")
    if action == "complete":
        record = control.airtm.payout_completes(payout_id)
    elif action == "fail":
        record = control.airtm.payout_fails(payout_id)
    else:
        raise ControlError(404, f"unknown payout action {action!r}")
    await control.after_airtm()
    return _json(render_payout(record))


@post("/faults", status_code=200)
async def add_fault(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Arm a fault rule: ``{rule_id}``."""
    body: FaultBody = await _decode(request, FaultBody)
    if body.service not in _SERVICES:
        raise ControlError(400, f"service must be one of {sorted(_SERVICES)}")
    try:
        rule_id = _control(request).faults.add(
            body.service, body.method, body.route, body.fault, body.count
        )
    except ValueError as error:
        raise ControlError(400, str(error)) from error
    return _json({"rule_id": rule_id})


@delete("/faults", status_code=204)
async def clear_faults(request: Request[Any, Any, Any]) -> None:
    """Disarm every fault rule."""
    _control(request).faults.clear()


@post("/clock/advance", status_code=200)
async def advance_clock(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Move the shared clock forward: ``{now, ledger}`` (now in unix seconds)."""
    body: AdvanceBody = await _decode(request, AdvanceBody)
    if body.seconds < 0:
        raise ControlError(400, "the sandbox clock never goes backwards")
    chain = _control(request).chain
    chain.advance(body.seconds)
    return _json({"now": chain.clock.now_s(), "ledger": chain.ledger})


@post("/tamper", status_code=200)
async def tamper(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Change a balance with no transaction (a movement the orchestrator cannot see)."""
    body: TamperBody = await _decode(request, TamperBody)
    delta = _amount(body.usdc_delta, signed=True)
    try:
        balance = _control(request).chain.tamper(body.address, delta)
    except ValueError as error:
        raise ControlError(400, str(error)) from error
    return _json({"address": body.address, "usdc": format_signed_amount(balance)})


def _control_error(_: Request[Any, Any, Any], error: ControlError) -> Response[bytes]:
    return _json({"error": str(error)}, error.status_code)


def _airtm_error(_: Request[Any, Any, Any], error: AirtmError) -> Response[bytes]:
    return _json({"error": error.message, "code": error.code}, error.http_status)


def create_control_app(control: SandboxControl, *, path_prefix: str = "") -> Litestar:
    """Build the control ASGI app over the sandbox's shared state."""
    router = Router(
        path=path_prefix.rstrip("/") or "/",
        route_handlers=[
            deposits,
            account,
            contract,
            payin_checkout,
            payin_transition,
            payout_transition,
            add_fault,
            clear_faults,
            advance_clock,
            tamper,
        ],
    )
    return Litestar(
        route_handlers=[router],
        state=State({_STATE_KEY: control}),
        exception_handlers={ControlError: _control_error, AirtmError: _airtm_error},
        openapi_config=None,
    )
