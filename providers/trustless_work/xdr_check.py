"""Verification of an unsigned envelope built by Trustless Work, before anyone signs it.

TW builds the transaction and the orchestrator signs it with a user's or the platform's key,
so a compromised or buggy TW could make us sign a payment to someone else. ``verify_unsigned_xdr``
applies the checks of providers.md 1.10 and returns the hash to persist before sending.
Any mismatch raises ``ProviderResponseInvalid`` with ``reason == "tampered_xdr"``; the step
fails and alerts, it is never retried blindly.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec
from stellar_sdk import Address, TransactionEnvelope, scval, xdr
from stellar_sdk.memo import NoneMemo
from stellar_sdk.operation import InvokeHostFunction, Operation
from stellar_sdk.preconditions import Preconditions

from providers.errors import ProviderResponseInvalid
from providers.trustless_work.errors import PROVIDER

__all__ = [
    "TAMPERED_XDR",
    "ExpectedInvocation",
    "VerifiedEnvelope",
    "XdrPolicy",
    "verify_unsigned_xdr",
]

TAMPERED_XDR: Final = "tampered_xdr"
_STROOPS_PER_XLM: Final = 10_000_000


class XdrPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Network-wide limits (config): passphrase, fee cap, validity window, the USDC contract."""

    network_passphrase: str
    fee_max_stroops: int = 2 * _STROOPS_PER_XLM
    max_time_ahead_min_s: int = 10
    max_time_ahead_max_s: int = 15 * 60
    # Nested authorized calls may only be token transfers on this contract (the USDC SAC).
    token_contract_id: str | None = None
    token_functions: frozenset[str] = frozenset({"transfer"})


class ExpectedInvocation(msgspec.Struct, frozen=True, kw_only=True):
    """What one action's envelope must contain.

    Attributes:
        source_address: The role address that signs (providers.md 1.2).
        contract_id: The escrow's stored contract id (deploy: the pinned deployer id).
        function_names: The allow-list of contract functions for this action.
        signer_address: The address that must appear among the arguments; defaults to the source.
        amounts_minor: Every i128 argument outside a distribution map, as a multiset.
        distributions_minor: The expected ``Map<Address, i128>`` entries (resolve, withdraw).
        trustless_work_address: The pinned TW fee address, where the function takes it.
        other_addresses: Further addresses the arguments may hold (roles, the token).
        account_sequence: The source account's current sequence, when known.
    """

    source_address: str
    contract_id: str
    function_names: frozenset[str]
    signer_address: str | None = None
    amounts_minor: tuple[int, ...] = ()
    distributions_minor: tuple[tuple[str, int], ...] = ()
    trustless_work_address: str | None = None
    other_addresses: frozenset[str] = frozenset()
    account_sequence: int | None = None


class VerifiedEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    """A checked envelope: persist ``tx_hash`` and ``max_time`` before signing and sending."""

    tx_hash: str
    max_time: int
    sequence: int
    fee_stroops: int


class _Arguments(msgspec.Struct, kw_only=True):
    """What a scan of the argument tree found."""

    addresses: list[str] = msgspec.field(default_factory=list)
    amounts: list[int] = msgspec.field(default_factory=list)
    distributions: list[tuple[str, int]] = msgspec.field(default_factory=list)


def _tampered(check: str, detail: str) -> ProviderResponseInvalid:
    return ProviderResponseInvalid(
        f"unsigned XDR failed the {check} check: {detail}", provider=PROVIDER, reason=TAMPERED_XDR
    )


def verify_unsigned_xdr(
    envelope_xdr: str, expected: ExpectedInvocation, policy: XdrPolicy, *, now_s: int
) -> VerifiedEnvelope:
    """Check an unsigned envelope against the action it should perform (providers.md 1.10).

    Args:
        envelope_xdr: The base64 envelope from TW's build reply.
        expected: The invocation this action must be, and nothing else.
        policy: Network passphrase and limits.
        now_s: The current unix time, for the time bounds.

    Returns:
        The tx hash (hex, computed with the network passphrase), max_time, sequence and fee.

    Raises:
        ProviderResponseInvalid: ``reason == "tampered_xdr"`` on any mismatch.
    """
    envelope = _decode(envelope_xdr, policy.network_passphrase)
    transaction = envelope.transaction
    _check_envelope(envelope, expected, policy)
    max_time = _check_time_bounds(transaction.preconditions, policy, now_s=now_s)
    operation = _single_invoke_operation(transaction.operations, expected.source_address)
    invocation = operation.host_function.invoke_contract
    if operation.host_function.type != xdr.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT:
        raise _tampered("host function", "not a contract invocation")
    assert invocation is not None
    function_name = _check_target(invocation, expected)
    _check_arguments(_scan(invocation.args), expected)
    _check_auth(operation.auth, expected.contract_id, function_name, policy)
    return VerifiedEnvelope(
        tx_hash=envelope.hash_hex(),
        max_time=max_time,
        sequence=transaction.sequence,
        fee_stroops=transaction.fee,
    )


def _decode(envelope_xdr: str, network_passphrase: str) -> TransactionEnvelope:
    try:
        raw = xdr.TransactionEnvelope.from_xdr(envelope_xdr)
        # A fee-bump would let TW choose who pays and wrap an inner tx we never saw built.
        if raw.type != xdr.EnvelopeType.ENVELOPE_TYPE_TX:
            raise _tampered("envelope type", f"{raw.type.name} is not a plain v1 transaction")
        return TransactionEnvelope.from_xdr(envelope_xdr, network_passphrase)
    except ProviderResponseInvalid:
        raise
    except Exception as error:
        # stellar_sdk raises assorted errors (ValueError, struct.error, ...) on bad XDR.
        raise _tampered("decode", repr(error)) from error


def _check_envelope(
    envelope: TransactionEnvelope, expected: ExpectedInvocation, policy: XdrPolicy
) -> None:
    transaction = envelope.transaction
    if envelope.signatures:
        raise _tampered("signatures", "an unsigned envelope already carries signatures")
    source = transaction.source
    if source.account_muxed is not None or source.account_id != expected.source_address:
        raise _tampered("source", f"{source.universal_account_id} is not the expected signer")
    if expected.account_sequence is not None and transaction.sequence <= expected.account_sequence:
        raise _tampered("sequence", f"{transaction.sequence} is not above the account's")
    if not isinstance(transaction.memo, NoneMemo):
        raise _tampered("memo", "a memo is set")
    if transaction.fee > policy.fee_max_stroops:
        raise _tampered("fee", f"{transaction.fee} stroops exceed {policy.fee_max_stroops}")


def _check_time_bounds(
    preconditions: Preconditions | None, policy: XdrPolicy, *, now_s: int
) -> int:
    time_bounds = None if preconditions is None else preconditions.time_bounds
    max_time = 0 if time_bounds is None else int(time_bounds.max_time)
    # max_time 0 means "valid forever": an envelope that can land any time later is refused.
    if max_time == 0:
        raise _tampered("time bounds", "no max_time")
    if max_time <= now_s + policy.max_time_ahead_min_s:
        raise _tampered("time bounds", f"max_time {max_time} expires too soon")
    if max_time > now_s + policy.max_time_ahead_max_s:
        raise _tampered("time bounds", f"max_time {max_time} is too far ahead")
    assert preconditions is not None
    if preconditions.extra_signers:
        raise _tampered("preconditions", "extra signers are required")
    return max_time


def _single_invoke_operation(
    operations: Sequence[Operation], source_address: str
) -> InvokeHostFunction:
    if len(operations) != 1:
        raise _tampered("operations", f"{len(operations)} operations instead of one")
    operation = operations[0]
    if not isinstance(operation, InvokeHostFunction):
        raise _tampered("operations", f"{type(operation).__name__} is not invoke_host_function")
    if operation.source is not None and operation.source.account_id != source_address:
        raise _tampered("operation source", "the operation has another source account")
    return operation


def _check_target(invocation: xdr.InvokeContractArgs, expected: ExpectedInvocation) -> str:
    contract_id = Address.from_xdr_sc_address(invocation.contract_address).address
    if contract_id != expected.contract_id:
        raise _tampered("contract", f"{contract_id} is not {expected.contract_id}")
    function_name = invocation.function_name.sc_symbol.decode("utf-8", errors="replace")
    if function_name not in expected.function_names:
        raise _tampered("function", f"{function_name!r} is not allowed for this action")
    return function_name


def _scan(values: Iterable[xdr.SCVal], found: _Arguments | None = None) -> _Arguments:
    # Walks the whole tree: TW nests amounts and addresses inside structs (Soroban maps).
    found = _Arguments() if found is None else found
    for value in values:
        if value.type == xdr.SCValType.SCV_ADDRESS:
            found.addresses.append(scval.from_address(value).address)
        elif value.type == xdr.SCValType.SCV_I128:
            found.amounts.append(scval.from_int128(value))
        elif value.type == xdr.SCValType.SCV_VEC and value.vec is not None:
            _scan(value.vec.sc_vec, found)
        elif value.type == xdr.SCValType.SCV_MAP and value.map is not None:
            _scan_map(value.map.sc_map, found)
    return found


def _scan_map(entries: list[xdr.SCMapEntry], found: _Arguments) -> None:
    is_distribution = bool(entries) and all(
        e.key.type == xdr.SCValType.SCV_ADDRESS and e.val.type == xdr.SCValType.SCV_I128
        for e in entries
    )
    for entry in entries:
        if is_distribution:
            address = scval.from_address(entry.key).address
            found.addresses.append(address)
            found.distributions.append((address, scval.from_int128(entry.val)))
        else:
            _scan([entry.key, entry.val], found)


def _check_arguments(found: _Arguments, expected: ExpectedInvocation) -> None:
    signer = expected.signer_address or expected.source_address
    if signer not in found.addresses:
        raise _tampered("signer", f"{signer} is not among the arguments")
    if Counter(found.amounts) != Counter(expected.amounts_minor):
        raise _tampered("amounts", f"found {sorted(found.amounts)}")
    if Counter(found.distributions) != Counter(expected.distributions_minor):
        raise _tampered("distributions", f"found {sorted(found.distributions)}")
    tw_address = expected.trustless_work_address
    if tw_address is not None and tw_address not in found.addresses:
        raise _tampered("fee address", "the Trustless Work fee address is missing")
    allowed = {expected.source_address, signer, expected.contract_id, *expected.other_addresses}
    allowed.update(address for address, _ in expected.distributions_minor)
    if tw_address is not None:
        allowed.add(tw_address)
    unexpected = sorted(set(found.addresses) - allowed)
    if unexpected:
        raise _tampered("addresses", f"unexpected {unexpected}")


def _check_auth(
    entries: list[xdr.SorobanAuthorizationEntry],
    contract_id: str,
    function_name: str,
    policy: XdrPolicy,
) -> None:
    for entry in entries:
        # Address credentials would need another party's signature inside the envelope.
        if entry.credentials.type != xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT:
            raise _tampered("auth", "an entry needs credentials other than the source account")
        root = entry.root_invocation
        if _called(root) != (contract_id, function_name):
            raise _tampered("auth", "the authorized root call is not the invoked function")
        _check_nested(root.sub_invocations, policy)


def _check_nested(invocations: list[xdr.SorobanAuthorizedInvocation], policy: XdrPolicy) -> None:
    for invocation in invocations:
        called_contract, called_function = _called(invocation)
        is_token = (
            policy.token_contract_id is not None and called_contract == policy.token_contract_id
        )
        if not is_token or called_function not in policy.token_functions:
            raise _tampered("auth", f"nested call {called_function!r} on {called_contract}")
        _check_nested(invocation.sub_invocations, policy)


def _called(invocation: xdr.SorobanAuthorizedInvocation) -> tuple[str, str]:
    function = invocation.function
    contract_fn = function.contract_fn
    if (
        function.type
        != xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN
        or contract_fn is None
    ):
        raise _tampered("auth", "an authorized call creates a contract")
    contract_id = Address.from_xdr_sc_address(contract_fn.contract_address).address
    return contract_id, contract_fn.function_name.sc_symbol.decode("utf-8", errors="replace")
