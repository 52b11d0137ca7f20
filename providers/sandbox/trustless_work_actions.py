"""What each Trustless Work action does: its signer, its contract call and its effect.

This module holds the shared machinery and the actions that set an escrow up (deploy, fund,
change milestone status, approve); ``trustless_work_payouts`` holds those that end it.

An action's ``execute(ledger)`` checks the contract rules against the *current* state and then
moves money and schedules state changes through a :class:`Ledger`. Building runs it on a
:class:`DryRun` (TW simulates every call before answering); sending runs it again inside the
chain's ``invoke_host_function`` on the real ``HostCall``, so a state that changed between
build and send traps the transaction with the same contract message.
"""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from stellar_sdk import StrKey

from providers.sandbox.trustless_work_envelopes import (
    DEPLOY_FUNCTION,
    Invocation,
    approve_args,
    change_status_args,
    deploy_args,
    fund_args,
)
from providers.sandbox.trustless_work_escrows import (
    ContractRuleError,
    EscrowRecord,
    EscrowType,
    MilestoneRecord,
    check_approve,
    check_change_status,
    check_deploy,
    check_fund,
    milestone_at,
    role_addresses,
)
from providers.trustless_work import bodies
from providers.trustless_work.wire import WireDeployMilestone, decimal_to_minor

__all__ = [
    "Action",
    "ActionContext",
    "DryRun",
    "EscrowNotFound",
    "Ledger",
    "approve",
    "change_status",
    "deploy",
    "fund",
    "to_minor",
]


class EscrowNotFound(Exception):
    """No escrow with this contract id (answered 404)."""


class Ledger(Protocol):
    """Where an action reads balances, moves USDC and defers its state changes."""

    def usdc_balance(self, address: str) -> int:
        """USDC of an account (0 without a trustline) or a contract."""
        ...

    def transfer(self, from_address: str, to_address: str, amount: int) -> None:
        """Move USDC stroops."""
        ...

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` once the transaction has committed."""
        ...


class DryRun:
    """The build-time simulation: reads chain balances, moves nothing, commits nothing."""

    def __init__(self, balance: Callable[[str], int | None]) -> None:
        self._balance = balance

    def usdc_balance(self, address: str) -> int:
        """The chain's balance (0 without a trustline)."""
        return self._balance(address) or 0

    def transfer(self, from_address: str, to_address: str, amount: int) -> None:
        """Refuse a payout to an account that could not receive it (no USDC trustline)."""
        del from_address, amount
        if not StrKey.is_valid_contract(to_address) and self._balance(to_address) is None:
            raise ContractRuleError(f"The address {to_address} has no trustline for the asset")

    def on_commit(self, hook: Callable[[], None]) -> None:
        """Nothing commits in a simulation."""
        del hook


@dataclass(frozen=True)
class Action:
    """A built action: who signs, the call, and its effect (``execute``)."""

    name: str
    source: str
    contract_id: str
    invocation: Invocation
    execute: Callable[[Ledger], None]


@dataclass
class ActionContext:
    """What actions read: the escrows, fee settings and sandbox-pinned addresses."""

    escrows: dict[str, EscrowRecord]
    tw_fee_address: str
    tw_fee_bps: int
    token_contract_id: str
    usdc_issuer: str
    deployer_id: str
    now_s: Callable[[], int]

    def escrow(self, contract_id: str) -> EscrowRecord:
        """The escrow, or :class:`EscrowNotFound`."""
        escrow = self.escrows.get(contract_id)
        if escrow is None:
            raise EscrowNotFound(contract_id)
        return escrow

    def touch(self, escrow: EscrowRecord) -> None:
        """Stamp an escrow as updated now."""
        escrow.updated_at_s = self.now_s()


def to_minor(amount: Decimal) -> int:
    """Human units to stroops, keeping the sign so that the contract rule reports it."""
    if amount < 0:
        return -decimal_to_minor(-amount)
    return decimal_to_minor(amount)


def _fee_bps(percent: Decimal) -> int:
    bps = percent * 100
    if bps != bps.to_integral_value():
        raise ContractRuleError("The platform fee must be a whole number of basis points")
    return int(bps)


def _require_account(address: str, what: str) -> None:
    if not StrKey.is_valid_ed25519_public_key(address):
        raise ContractRuleError(f"{what} must be a valid Stellar address")


def deploy(
    ctx: ActionContext,
    body: bodies.DeploySingleReleaseBody | bodies.DeployMultiReleaseBody,
    *,
    contract_id: str,
    salt: bytes,
) -> Action:
    """Deploy a single- or multi-release escrow at ``contract_id`` (derived from the salt)."""
    multi = isinstance(body, bodies.DeployMultiReleaseBody)
    escrow_type: EscrowType = "multi-release" if multi else "single-release"
    for address in (body.signer, *role_addresses(body.roles)):
        _require_account(address, "Every role")
    if multi == (body.roles.receiver is not None):
        raise ContractRuleError("Only single-release escrows have a receiver role")
    if body.trustline.address != ctx.usdc_issuer:
        raise ContractRuleError("The trustline must be the sandbox USDC issuer")
    milestones = [_deploy_milestone(m, multi=multi) for m in body.milestones]
    if multi:
        amounts = [m.amount or 0 for m in milestones]
        amount = sum(amounts)
    else:
        assert isinstance(body, bodies.DeploySingleReleaseBody)
        amount = to_minor(body.amount)
        amounts = [amount]
    fee_bps = _fee_bps(body.platform_fee)
    check_deploy(amounts, fee_bps, len(milestones), ctx.tw_fee_bps)
    record = EscrowRecord(
        contract_id=contract_id,
        escrow_type=escrow_type,
        signer=body.signer,
        engagement_id=body.engagement_id,
        title=body.title,
        description=body.description,
        roles=body.roles,
        amount=amount,
        platform_fee_bps=fee_bps,
        milestones=milestones,
        trustline_address=body.trustline.address,
        receiver_memo=body.receiver_memo,
    )
    invocation = Invocation(
        ctx.deployer_id, DEPLOY_FUNCTION, deploy_args(record, salt, ctx.token_contract_id)
    )

    def execute(ledger: Ledger) -> None:
        if contract_id in ctx.escrows:
            raise ContractRuleError("The contract already exists")

        def commit() -> None:
            record.created_at_s = record.updated_at_s = ctx.now_s()
            ctx.escrows[contract_id] = record

        ledger.on_commit(commit)

    return Action("deploy", body.signer, contract_id, invocation, execute)


def _deploy_milestone(milestone: WireDeployMilestone, *, multi: bool) -> MilestoneRecord:
    if not multi:
        return MilestoneRecord(description=milestone.description)
    if milestone.amount is None or milestone.receiver is None:
        raise ContractRuleError("Each milestone needs an amount and a receiver")
    _require_account(milestone.receiver, "The milestone receiver")
    return MilestoneRecord(
        description=milestone.description,
        amount=to_minor(milestone.amount),
        receiver=milestone.receiver,
    )


def fund(ctx: ActionContext, body: bodies.FundBody) -> Action:
    """Move ``amount`` USDC from the signer into the contract."""
    escrow = ctx.escrow(body.contract_id)
    amount = to_minor(body.amount)
    cid = escrow.contract_id
    transfer = (body.signer, cid, amount) if amount > 0 else None
    invocation = Invocation(cid, "fund_escrow", fund_args(body.signer, amount), transfer)

    def execute(ledger: Ledger) -> None:
        check_fund(amount, ledger.usdc_balance(body.signer))
        ledger.transfer(body.signer, cid, amount)
        ledger.on_commit(lambda: ctx.touch(escrow))

    return Action("fund", body.signer, cid, invocation, execute)


def change_status(ctx: ActionContext, body: bodies.ChangeMilestoneStatusBody) -> Action:
    """Set a milestone's status and evidence (the service provider signs)."""
    escrow = ctx.escrow(body.contract_id)
    milestone = milestone_at(escrow, body.milestone_index)
    if not body.new_status:
        raise ContractRuleError("The new status cannot be empty")
    index = int(body.milestone_index)
    args = change_status_args(index, body.new_status, body.new_evidence, body.service_provider)
    invocation = Invocation(escrow.contract_id, "change_milestone_status", args)

    def execute(ledger: Ledger) -> None:
        check_change_status(escrow, body.service_provider, milestone)

        def commit() -> None:
            milestone.status, milestone.evidence = body.new_status, body.new_evidence
            ctx.touch(escrow)

        ledger.on_commit(commit)

    return Action("change_status", body.service_provider, escrow.contract_id, invocation, execute)


def approve(ctx: ActionContext, body: bodies.ApproveMilestoneBody) -> Action:
    """Approve a milestone (the approver signs)."""
    escrow = ctx.escrow(body.contract_id)
    milestone = milestone_at(escrow, body.milestone_index)
    args = approve_args(int(body.milestone_index), body.approver)
    invocation = Invocation(escrow.contract_id, "approve_milestone", args)

    def execute(ledger: Ledger) -> None:
        check_approve(escrow, body.approver, milestone)

        def commit() -> None:
            milestone.approved = True
            ctx.touch(escrow)

        ledger.on_commit(commit)

    return Action("approve", body.approver, escrow.contract_id, invocation, execute)
