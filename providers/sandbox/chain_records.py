"""Turning a stored transaction's operations into payments-endpoint records (providers.md 2.4).

Operation ids follow Horizon's TOID layout: ``ledger << 32 | tx_order << 12 | op_index + 1``.
The sandbox closes one ledger per transaction, so ``tx_order`` is always 1 and ids (and paging
tokens, which equal them) increase strictly across the whole log.
"""

import base64
from datetime import UTC, datetime

from stellar_sdk import HashMemo, IdMemo, Memo, Operation, ReturnHashMemo, TextMemo, Transaction
from stellar_sdk.operation import CreateAccount, InvokeHostFunction, Payment

from providers.sandbox.chain_state import OpRecord
from providers.stellar.port import AssetBalanceChange

__all__ = [
    "format_amount7",
    "iso_time",
    "memo_fields",
    "op_records",
    "operation_id",
    "tx_paging_token",
]

_TX_ORDER = 1


def format_amount7(stroops: int) -> str:
    """Horizon's amount format: always exactly 7 decimals (``"10.0000000"``)."""
    sign = "-" if stroops < 0 else ""
    whole, fraction = divmod(abs(stroops), 10_000_000)
    return f"{sign}{whole}.{fraction:07d}"


def iso_time(unix_s: int) -> str:
    """Horizon's timestamp format (UTC, seconds, ``Z``)."""
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def operation_id(ledger: int, index: int) -> int:
    """The TOID of operation ``index`` of the (only) transaction of ``ledger``."""
    return (ledger << 32) | (_TX_ORDER << 12) | (index + 1)


def tx_paging_token(ledger: int) -> str:
    """The paging token of the (only) transaction of ``ledger``."""
    return str((ledger << 32) | (_TX_ORDER << 12))


def memo_fields(memo: Memo) -> tuple[str, str | None]:
    """Horizon's ``memo_type`` and ``memo`` (hash memos in base64, ids as decimal text)."""
    if isinstance(memo, TextMemo):
        return "text", memo.memo_text.decode("utf-8", errors="replace")
    if isinstance(memo, IdMemo):
        return "id", str(memo.memo_id)
    if isinstance(memo, HashMemo):
        return "hash", base64.b64encode(memo.memo_hash).decode()
    if isinstance(memo, ReturnHashMemo):
        return "return", base64.b64encode(memo.memo_return).decode()
    return "none", None


def _change_json(change: AssetBalanceChange) -> dict[str, object]:
    return {
        "asset_type": "credit_alphanum4",
        "asset_code": change.asset_code,
        "asset_issuer": change.asset_issuer,
        "type": change.type,
        "from": change.from_address,
        "to": change.to_address,
        "amount": format_amount7(change.amount),
    }


def _payment_fields(op: Payment, source: str) -> tuple[str, int, dict[str, object], set[str]]:
    to = op.destination.account_id
    fields: dict[str, object] = {"asset_type": op.asset.type}
    if not op.asset.is_native():
        fields |= {"asset_code": op.asset.code, "asset_issuer": op.asset.issuer}
    fields |= {
        "from": source,
        "to": to,
        "amount": format_amount7(Operation.to_xdr_amount(op.amount)),
    }
    return "payment", 1, fields, {source, to}


def _record_fields(
    op: Operation, source: str, changes: list[AssetBalanceChange]
) -> tuple[str, int, dict[str, object], set[str]] | None:
    """Type, type_i, JSON fields and participants of a payment-like op; None for other ops."""
    if isinstance(op, Payment):
        return _payment_fields(op, source)
    if isinstance(op, CreateAccount):
        amount = format_amount7(Operation.to_xdr_amount(op.starting_balance))
        fields: dict[str, object] = {
            "starting_balance": amount,
            "funder": source,
            "account": op.destination,
        }
        return "create_account", 0, fields, {source, op.destination}
    if isinstance(op, InvokeHostFunction):
        fields = {
            "function": "HostFunctionTypeHostFunctionTypeInvokeContract",
            "parameters": [],
            "address": "",
            "salt": "",
            "asset_balance_changes": [_change_json(c) for c in changes],
        }
        parties = {source} | {a for c in changes for a in (c.from_address, c.to_address)}
        return "invoke_host_function", 24, fields, {p for p in parties if p.startswith("G")}
    return None


def op_records(
    tx: Transaction,
    *,
    tx_hash: str,
    ledger: int,
    created_at: str,
    successful: bool,
    balance_changes: dict[int, list[AssetBalanceChange]],
) -> list[OpRecord]:
    """The payments-endpoint records of a stored transaction (failed ones included, flagged)."""
    records: list[OpRecord] = []
    for index, op in enumerate(tx.operations):
        source = op.source.account_id if op.source is not None else tx.source.account_id
        described = _record_fields(op, source, balance_changes.get(index, []))
        if described is None:
            continue
        kind, type_i, fields, participants = described
        records.append(
            OpRecord(
                id=operation_id(ledger, index),
                type=kind,
                type_i=type_i,
                tx_hash=tx_hash,
                successful=successful,
                created_at=created_at,
                source_account=source,
                fields=fields,
                participants=frozenset(participants),
            )
        )
    return records
