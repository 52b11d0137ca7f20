"""Horizon's result-code names for stellar-core's XDR result enums, and decoding of ``result_xdr``.

The names are the ones Horizon puts in ``extras.result_codes`` (``tx_bad_seq``,
``op_underfunded``), so the sandbox can speak them and the client can read them from a
stored ``result_xdr`` the same way.
"""

from typing import Final

import msgspec
from stellar_sdk import xdr

__all__ = [
    "ResultCodes",
    "decode_result_xdr",
    "op_code_name",
    "tx_code_name",
]

_TX = xdr.TransactionResultCode
_TX_NAMES: Final[dict[_TX, str]] = {
    _TX.txFEE_BUMP_INNER_SUCCESS: "tx_fee_bump_inner_success",
    _TX.txSUCCESS: "tx_success",
    _TX.txFAILED: "tx_failed",
    _TX.txTOO_EARLY: "tx_too_early",
    _TX.txTOO_LATE: "tx_too_late",
    _TX.txMISSING_OPERATION: "tx_missing_operation",
    _TX.txBAD_SEQ: "tx_bad_seq",
    _TX.txBAD_AUTH: "tx_bad_auth",
    _TX.txINSUFFICIENT_BALANCE: "tx_insufficient_balance",
    _TX.txNO_ACCOUNT: "tx_no_source_account",
    _TX.txINSUFFICIENT_FEE: "tx_insufficient_fee",
    _TX.txBAD_AUTH_EXTRA: "tx_bad_auth_extra",
    _TX.txINTERNAL_ERROR: "tx_internal_error",
    _TX.txNOT_SUPPORTED: "tx_not_supported",
    _TX.txFEE_BUMP_INNER_FAILED: "tx_fee_bump_inner_failed",
    _TX.txBAD_SPONSORSHIP: "tx_bad_sponsorship",
    _TX.txBAD_MIN_SEQ_AGE_OR_GAP: "tx_bad_minseq_age_or_gap",
    _TX.txMALFORMED: "tx_malformed",
    _TX.txSOROBAN_INVALID: "tx_soroban_invalid",
}

_OPR = xdr.OperationResultCode
# Codes stellar-core gives before an operation's own logic runs (no ``tr`` body).
_OUTER_OP_NAMES: Final[dict[_OPR, str]] = {
    _OPR.opBAD_AUTH: "op_bad_auth",
    _OPR.opNO_ACCOUNT: "op_no_source_account",
    _OPR.opNOT_SUPPORTED: "op_not_supported",
    _OPR.opTOO_MANY_SUBENTRIES: "op_too_many_subentries",
    _OPR.opEXCEEDED_WORK_LIMIT: "op_exceeded_work_limit",
    _OPR.opTOO_MANY_SPONSORING: "op_too_many_sponsoring",
}

_T = xdr.OperationType
# Per operation type: inner result value -> Horizon name. 0 is always "op_success".
_INNER_OP_NAMES: Final[dict[_T, dict[int, str]]] = {
    _T.CREATE_ACCOUNT: {
        -1: "op_malformed",
        -2: "op_underfunded",
        -3: "op_low_reserve",
        -4: "op_already_exists",
    },
    _T.PAYMENT: {
        -1: "op_malformed",
        -2: "op_underfunded",
        -3: "op_src_no_trust",
        -4: "op_src_not_authorized",
        -5: "op_no_destination",
        -6: "op_no_trust",
        -7: "op_not_authorized",
        -8: "op_line_full",
        -9: "op_no_issuer",
    },
    _T.CHANGE_TRUST: {
        -1: "op_malformed",
        -2: "op_no_issuer",
        -3: "op_invalid_limit",
        -4: "op_low_reserve",
        -5: "op_self_not_allowed",
        -6: "op_trust_line_missing",
        -7: "op_cannot_delete",
        -8: "op_not_aut_maintain_liabilities",
    },
    _T.BEGIN_SPONSORING_FUTURE_RESERVES: {
        -1: "op_malformed",
        -2: "op_already_sponsored",
        -3: "op_recursive",
    },
    _T.END_SPONSORING_FUTURE_RESERVES: {-1: "op_not_sponsored"},
    _T.INVOKE_HOST_FUNCTION: {
        -1: "op_malformed",
        -2: "op_trapped",
        -3: "op_resource_limit_exceeded",
        -4: "op_entry_archived",
        -5: "op_insufficient_refundable_fee",
    },
}


class ResultCodes(msgspec.Struct, frozen=True, kw_only=True):
    """Horizon's ``result_codes``: the tx code, the inner tx code of a fee-bump, the op codes."""

    transaction: str
    inner_transaction: str | None = None
    operations: tuple[str, ...] = ()


def tx_code_name(code: xdr.TransactionResultCode) -> str:
    """Return Horizon's name for a transaction result code."""
    return _TX_NAMES.get(code, f"tx_unknown_{code.value}")


def op_code_name(op_type: xdr.OperationType, value: int) -> str:
    """Return Horizon's name for the inner result ``value`` of an operation of ``op_type``."""
    if value == 0:
        return "op_success"
    return _INNER_OP_NAMES.get(op_type, {}).get(value, f"op_unknown_{value}")


def _op_result_name(result: xdr.OperationResult) -> str:
    if result.code != _OPR.opINNER or result.tr is None:
        return _OUTER_OP_NAMES.get(result.code, f"op_unknown_{result.code.value}")
    tr = result.tr
    # Every ``OperationResultTr`` arm is an attribute ending in ``_result`` holding ``.code``.
    for name, value in vars(tr).items():
        if name.endswith("_result") and value is not None:
            return op_code_name(tr.type, int(value.code.value))
    return "op_unknown"


def _op_names(results: list[xdr.OperationResult] | None) -> tuple[str, ...]:
    return tuple(_op_result_name(r) for r in results or ())


def decode_result_xdr(result_xdr: str) -> ResultCodes:
    """Decode a base64 ``TransactionResult`` into Horizon-style result codes.

    Raises:
        ValueError: the text is not a ``TransactionResult``.
    """
    try:
        result = xdr.TransactionResult.from_xdr(result_xdr).result
    except Exception as exc:  # the XDR unpacker raises several unrelated types
        raise ValueError("result_xdr is not a TransactionResult") from exc
    pair = result.inner_result_pair
    if pair is None:
        return ResultCodes(
            transaction=tx_code_name(result.code), operations=_op_names(result.results)
        )
    inner = pair.result.result
    return ResultCodes(
        transaction=tx_code_name(result.code),
        inner_transaction=tx_code_name(inner.code),
        operations=_op_names(inner.results),
    )
