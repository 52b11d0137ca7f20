"""Horizon's JSON documents for the sandbox's state (providers.md 2.4): HAL resources and problems.

Plain dicts on purpose: each function mirrors one Horizon resource field by field, and the
app encodes them with msgspec. Int64 values Horizon sends as strings (sequence, fees) are
strings here too; amounts always carry 7 decimals.
"""

import base64
from urllib.parse import urlencode

from providers.sandbox.chain_records import format_amount7, iso_time, tx_paging_token
from providers.sandbox.chain_state import BASE_RESERVE, AccountEntry, OpRecord, TxRecord
from providers.stellar.result_codes import ResultCodes

__all__ = [
    "HORIZON_ERRORS",
    "account_json",
    "fee_stats_json",
    "ledger_page_json",
    "op_json",
    "page_json",
    "problem_json",
    "tx_json",
]

HORIZON_ERRORS = "https://stellar.org/horizon-errors/"
_PROTOCOL_VERSION = 22
_ZERO = "0.0000000"
_FEE_PERCENTILES = (
    "max",
    "min",
    "mode",
    *(f"p{n}" for n in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99)),
)


def _href(base: str, path: str) -> dict[str, object]:
    return {"href": f"{base}{path}"}


def _balances(entry: AccountEntry, ledger: int) -> list[dict[str, object]]:
    balances: list[dict[str, object]] = []
    for key, line in entry.trustlines.items():
        code, issuer = key.split(":", 1)
        balances.append(
            {
                "balance": format_amount7(line.balance),
                "limit": format_amount7(line.limit),
                "buying_liabilities": _ZERO,
                "selling_liabilities": _ZERO,
                "last_modified_ledger": ledger,
                "is_authorized": line.authorized,
                "is_authorized_to_maintain_liabilities": line.authorized,
                "asset_type": "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12",
                "asset_code": code,
                "asset_issuer": issuer,
            }
            | ({"sponsor": line.sponsor} if line.sponsor else {})
        )
    balances.append(
        {
            "balance": format_amount7(entry.xlm),
            "buying_liabilities": _ZERO,
            "selling_liabilities": _ZERO,
            "asset_type": "native",
        }
    )
    return balances


def account_json(entry: AccountEntry, base: str) -> dict[str, object]:
    """``GET /accounts/{id}``."""
    account_id = entry.account_id
    signers = [
        {"weight": weight, "key": key, "type": "ed25519_public_key"}
        for key, weight in entry.signer_weights().items()
    ]
    document: dict[str, object] = {
        "_links": {
            "self": _href(base, f"/accounts/{account_id}"),
            "transactions": _href(base, f"/accounts/{account_id}/transactions"),
            "payments": _href(base, f"/accounts/{account_id}/payments"),
        },
        "id": account_id,
        "account_id": account_id,
        "sequence": str(entry.sequence),
        "subentry_count": entry.subentries,
        "last_modified_ledger": entry.last_modified_ledger,
        "thresholds": {
            "low_threshold": 0,
            "med_threshold": entry.med_threshold,
            "high_threshold": 0,
        },
        "flags": {
            "auth_required": False,
            "auth_revocable": False,
            "auth_immutable": False,
            "auth_clawback_enabled": False,
        },
        "balances": _balances(entry, entry.last_modified_ledger),
        "signers": signers,
        "data": {k: _b64(v) for k, v in entry.data.items()},
        "num_sponsoring": entry.num_sponsoring,
        "num_sponsored": entry.num_sponsored,
        "paging_token": account_id,
    }
    if entry.sponsor is not None:
        document["sponsor"] = entry.sponsor
    return document


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def tx_json(record: TxRecord, base: str, *, as_hash: str | None = None) -> dict[str, object]:
    """A transaction resource; ``as_hash`` renders a fee-bump under its inner hash."""
    tx_hash = as_hash or record.hash
    document: dict[str, object] = {
        "_links": {
            "self": _href(base, f"/transactions/{tx_hash}"),
            "account": _href(base, f"/accounts/{record.source_account}"),
            "payments": _href(base, f"/transactions/{tx_hash}/payments"),
        },
        "id": tx_hash,
        "paging_token": tx_paging_token(record.ledger),
        "successful": record.successful,
        "hash": tx_hash,
        "ledger": record.ledger,
        "created_at": record.created_at,
        "source_account": record.source_account,
        "source_account_sequence": str(record.source_sequence),
        "fee_account": record.fee_account,
        "fee_charged": str(record.fee_charged),
        "max_fee": str(record.max_fee),
        "operation_count": record.operation_count,
        "envelope_xdr": record.envelope_xdr,
        "result_xdr": record.result_xdr,
        "memo_type": record.memo_type,
        "signatures": list(record.signatures),
        "valid_after": iso_time(record.min_time),
        "preconditions": {
            "timebounds": {"min_time": str(record.min_time), "max_time": str(record.max_time)}
        },
    }
    if record.memo is not None:
        document["memo"] = record.memo
    if record.max_time:
        document["valid_before"] = iso_time(record.max_time)
    if record.inner_hash is not None:
        document["fee_bump_transaction"] = {"hash": record.hash, "signatures": []}
        document["inner_transaction"] = {"hash": record.inner_hash, "signatures": []}
    return document


def op_json(record: OpRecord, base: str, tx: TxRecord | None = None) -> dict[str, object]:
    """A payments-endpoint record; ``tx`` embeds the transaction (``join=transactions``)."""
    op_id = str(record.id)
    document: dict[str, object] = {
        "_links": {
            "self": _href(base, f"/operations/{op_id}"),
            "transaction": _href(base, f"/transactions/{record.tx_hash}"),
        },
        "id": op_id,
        "paging_token": op_id,
        "transaction_successful": record.successful,
        "source_account": record.source_account,
        "type": record.type,
        "type_i": record.type_i,
        "created_at": record.created_at,
        "transaction_hash": record.tx_hash,
        **record.fields,
    }
    if tx is not None:
        document["transaction"] = tx_json(tx, base)
    return document


def page_json(
    records: list[dict[str, object]], base: str, path: str, query: dict[str, str]
) -> dict[str, object]:
    """A HAL page: ``next`` continues after the last record, ``prev`` goes back from the first."""
    order = query.get("order", "asc")
    first = str(records[0]["paging_token"]) if records else query.get("cursor", "")
    last = str(records[-1]["paging_token"]) if records else query.get("cursor", "")
    reverse = "desc" if order == "asc" else "asc"

    def link(cursor: str, direction: str) -> dict[str, object]:
        """The same query from ``cursor`` in ``direction``."""
        return _href(base, f"{path}?{urlencode(query | {'cursor': cursor, 'order': direction})}")

    return {
        "_links": {
            "self": _href(base, f"{path}?{urlencode(query)}"),
            "next": link(last, order),
            "prev": link(first, reverse),
        },
        "_embedded": {"records": records},
    }


def ledger_page_json(ledger: int, closed_at: int, base_fee: int, base: str) -> dict[str, object]:
    """``GET /ledgers?order=desc&limit=1``: the latest ledger only."""
    record = {
        "id": f"{ledger:064x}",
        "paging_token": str(ledger << 32),
        "hash": f"{ledger:064x}",
        "sequence": ledger,
        "closed_at": iso_time(closed_at),
        "base_fee_in_stroops": base_fee,
        "base_reserve_in_stroops": BASE_RESERVE,
        "max_tx_set_size": 1000,
        "protocol_version": _PROTOCOL_VERSION,
    }
    return page_json([record], base, "/ledgers", {"order": "desc", "limit": "1"})


def fee_stats_json(ledger: int, base_fee: int) -> dict[str, object]:
    """``GET /fee_stats`` with every percentile at the current minimum (no competition)."""
    percentiles = {name: str(base_fee) for name in _FEE_PERCENTILES}
    return {
        "last_ledger": str(ledger),
        "last_ledger_base_fee": str(base_fee),
        "ledger_capacity_usage": "0.01",
        "fee_charged": percentiles,
        "max_fee": percentiles,
    }


def problem_json(
    kind: str,
    title: str,
    status: int,
    detail: str,
    *,
    envelope_xdr: str | None = None,
    result_xdr: str | None = None,
    codes: ResultCodes | None = None,
) -> dict[str, object]:
    """A Horizon problem document, with ``extras`` for transaction errors."""
    document: dict[str, object] = {
        "type": HORIZON_ERRORS + kind,
        "title": title,
        "status": status,
        "detail": detail,
    }
    extras: dict[str, object] = {}
    if envelope_xdr is not None:
        extras["envelope_xdr"] = envelope_xdr
    if result_xdr is not None:
        extras["result_xdr"] = result_xdr
    if codes is not None:
        result_codes: dict[str, object] = {"transaction": codes.transaction}
        if codes.inner_transaction is not None:
            result_codes["inner_transaction"] = codes.inner_transaction
        if codes.operations:
            result_codes["operations"] = list(codes.operations)
        extras["result_codes"] = result_codes
    if extras:
        document["extras"] = extras
    return document
