"""Real unsigned envelopes for the simulated Trustless Work: one contract call each.

Argument layout (what ``providers.trustless_work.xdr_check`` scans): addresses as ``Address``,
money as i128 stroops, distributions as ``Map<Address, i128>``, milestone indexes as u32 (not
i128, so they never count as amounts), texts as strings. The deploy carries the escrow as a
struct (a symbol-keyed map) whose i128 fields are the amount (multi-release: each milestone
amount) and the platform fee in basis points, and whose addresses are the six roles and the
USDC token contract. Every envelope authorizes the call with source-account credentials only;
a fund also authorizes the nested ``transfer`` on the USDC token contract.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from stellar_sdk import (
    Account,
    Address,
    Asset,
    TransactionBuilder,
    TransactionEnvelope,
    scval,
    xdr,
)

from providers.sandbox.trustless_work_escrows import EscrowRecord, MilestoneRecord

__all__ = [
    "DEPLOY_FUNCTION",
    "EnvelopeFactory",
    "Invocation",
    "approve_args",
    "change_status_args",
    "deploy_args",
    "dispute_args",
    "fund_args",
    "release_args",
    "resolve_args",
]

DEPLOY_FUNCTION: Final = "deploy"
# Simulated Soroban resources: fixed, well under the 2 XLM cap of providers.md 1.10.
_INSTRUCTIONS: Final = 4_000_000
_READ_BYTES: Final = 10_000
_WRITE_BYTES: Final = 2_000


@dataclass(frozen=True)
class Invocation:
    """One contract call; ``token_transfer`` = (from, to, amount) authorized as a nested call."""

    contract_id: str
    function_name: str
    args: tuple[xdr.SCVal, ...]
    token_transfer: tuple[str, str, int] | None = None


def _address(address: str) -> xdr.SCVal:
    return scval.to_address(address)


def _index(index: int | None) -> list[xdr.SCVal]:
    return [] if index is None else [scval.to_uint32(index)]


def _distributions(distributions: Sequence[tuple[str, int]]) -> xdr.SCVal:
    # Kept in request order: the payouts (and their balance changes) follow it.
    return scval.to_map({_address(a): scval.to_int128(amount) for a, amount in distributions})


def _flags(disputed: bool, released: bool, resolved: bool) -> xdr.SCVal:
    return scval.to_struct(
        {
            "disputed": scval.to_bool(disputed),
            "released": scval.to_bool(released),
            "resolved": scval.to_bool(resolved),
        }
    )


def _milestone(milestone: MilestoneRecord) -> xdr.SCVal:
    fields = {
        "approved": scval.to_bool(milestone.approved),
        "description": scval.to_string(milestone.description),
        "evidence": scval.to_string(milestone.evidence),
        "status": scval.to_string(milestone.status),
    }
    if milestone.amount is not None and milestone.receiver is not None:
        fields["amount"] = scval.to_int128(milestone.amount)
        fields["receiver"] = _address(milestone.receiver)
        flags = milestone.flags
        fields["flags"] = _flags(flags.disputed, flags.released, flags.resolved)
    return scval.to_struct(fields)


def deploy_args(escrow: EscrowRecord, salt: bytes, token_contract_id: str) -> tuple[xdr.SCVal, ...]:
    """``deploy(deployer, salt, init_fn, escrow)``: the escrow as the contract will store it."""
    roles = escrow.roles
    role_fields = {
        "approver": _address(roles.approver),
        "dispute_resolver": _address(roles.dispute_resolver),
        "platform_address": _address(roles.platform_address),
        "release_signer": _address(roles.release_signer),
        "service_provider": _address(roles.service_provider),
    }
    fields = {
        "description": scval.to_string(escrow.description),
        "engagement_id": scval.to_string(escrow.engagement_id),
        "milestones": scval.to_vec([_milestone(m) for m in escrow.milestones]),
        "platform_fee": scval.to_int128(escrow.platform_fee_bps),
        "receiver_memo": scval.to_uint32(escrow.receiver_memo or 0),
        "title": scval.to_string(escrow.title),
        "trustline": scval.to_struct({"address": _address(token_contract_id)}),
    }
    if escrow.escrow_type == "single-release":
        assert roles.receiver is not None
        role_fields["receiver"] = _address(roles.receiver)
        fields["amount"] = scval.to_int128(escrow.amount)
        fields["flags"] = _flags(False, False, False)
        init_fn = "initialize_escrow"
    else:
        init_fn = "initialize_multi_release_escrow"
    fields["roles"] = scval.to_struct(role_fields)
    return (
        _address(escrow.signer),
        scval.to_bytes(salt),
        scval.to_symbol(init_fn),
        scval.to_struct(fields),
    )


def fund_args(signer: str, amount: int) -> tuple[xdr.SCVal, ...]:
    """``fund_escrow(signer, amount)``."""
    return (_address(signer), scval.to_int128(amount))


def change_status_args(
    index: int, status: str, evidence: str, service_provider: str
) -> tuple[xdr.SCVal, ...]:
    """``change_milestone_status(index, new_status, new_evidence, service_provider)``."""
    return (
        scval.to_uint32(index),
        scval.to_string(status),
        scval.to_string(evidence),
        _address(service_provider),
    )


def approve_args(index: int, approver: str) -> tuple[xdr.SCVal, ...]:
    """``approve_milestone(index, approver)``."""
    return (scval.to_uint32(index), _address(approver))


def release_args(signer: str, tw_fee_address: str, index: int | None) -> tuple[xdr.SCVal, ...]:
    """``release_funds(release_signer, trustless_work_address)`` (+ index, multi-release)."""
    return (_address(signer), _address(tw_fee_address), *_index(index))


def dispute_args(signer: str, index: int | None) -> tuple[xdr.SCVal, ...]:
    """``dispute_escrow(signer)`` or ``dispute_milestone(index, signer)``."""
    return (*_index(index), _address(signer))


def resolve_args(
    resolver: str,
    tw_fee_address: str,
    distributions: Sequence[tuple[str, int]],
    index: int | None,
) -> tuple[xdr.SCVal, ...]:
    """``resolve_dispute`` / ``resolve_milestone_dispute`` / ``withdraw_remaining_funds``."""
    return (
        _address(resolver),
        _address(tw_fee_address),
        *_index(index),
        _distributions(distributions),
    )


class EnvelopeFactory:
    """Builds the unsigned envelope of an invocation on an account's next sequence."""

    def __init__(
        self,
        *,
        passphrase: str,
        token_contract_id: str,
        base_fee: int,
        resource_fee: int,
        window_s: int,
    ) -> None:
        self.passphrase = passphrase
        self.token_contract_id = token_contract_id
        self.base_fee = base_fee
        self.resource_fee = resource_fee
        self.window_s = window_s

    def build(
        self,
        source: str,
        sequence: int,
        invocation: Invocation,
        *,
        now_s: int,
        extra_payment: tuple[str, Asset, str] | None = None,
    ) -> TransactionEnvelope:
        """Source ``source`` at ``sequence + 1``, fee = base + resource fee, bounds now+window.

        ``extra_payment`` (destination, asset, amount) appends a payment operation: only the
        ``tampered_xdr`` fault asks for it.
        """
        soroban_data = _soroban_data(self.resource_fee)
        builder = TransactionBuilder(Account(source, sequence), self.passphrase, self.base_fee)
        builder.append_invoke_contract_function_op(
            invocation.contract_id,
            invocation.function_name,
            list(invocation.args),
            auth=[self._auth(invocation)],
        )
        if extra_payment is not None:
            destination, asset, amount = extra_payment
            builder.append_payment_op(destination, asset, amount)
        builder.set_soroban_data(soroban_data)
        builder.add_time_bounds(0, now_s + self.window_s)
        return builder.build()

    def _auth(self, invocation: Invocation) -> xdr.SorobanAuthorizationEntry:
        nested: list[xdr.SorobanAuthorizedInvocation] = []
        if invocation.token_transfer is not None:
            from_address, to_address, amount = invocation.token_transfer
            transfer_args = [_address(from_address), _address(to_address), scval.to_int128(amount)]
            nested.append(_authorized(self.token_contract_id, "transfer", transfer_args, []))
        # Source-account credentials: the tx signature authorizes; no other party signs.
        root = _authorized(
            invocation.contract_id, invocation.function_name, list(invocation.args), nested
        )
        credentials = xdr.SorobanCredentials(
            xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        )
        return xdr.SorobanAuthorizationEntry(credentials, root)


def _soroban_data(resource_fee: int) -> xdr.SorobanTransactionData:
    """Declared resources (an empty footprint: nothing here reads real ledger entries)."""
    resources = xdr.SorobanResources(
        footprint=xdr.LedgerFootprint(read_only=[], read_write=[]),
        instructions=xdr.Uint32(_INSTRUCTIONS),
        disk_read_bytes=xdr.Uint32(_READ_BYTES),
        write_bytes=xdr.Uint32(_WRITE_BYTES),
    )
    return xdr.SorobanTransactionData(
        ext=xdr.SorobanTransactionDataExt(0),
        resources=resources,
        resource_fee=xdr.Int64(resource_fee),
    )


def _authorized(
    contract_id: str,
    function_name: str,
    args: list[xdr.SCVal],
    nested: list[xdr.SorobanAuthorizedInvocation],
) -> xdr.SorobanAuthorizedInvocation:
    call = xdr.InvokeContractArgs(
        Address(contract_id).to_xdr_sc_address(),
        xdr.SCSymbol(function_name.encode()),
        args,
    )
    function = xdr.SorobanAuthorizedFunction(
        xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
        contract_fn=call,
    )
    return xdr.SorobanAuthorizedInvocation(function, nested)
