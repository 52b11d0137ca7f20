"""Genuine ``TransactionResult`` XDR for the sandbox, built with ``stellar_sdk.xdr``.

Result codes shown to clients are decoded back from the XDR built here, so ``result_xdr`` and
``extras.result_codes`` can never disagree.
"""

import hashlib
from dataclasses import dataclass
from typing import Final

from stellar_sdk import xdr

from providers.stellar.result_codes import ResultCodes, decode_result_xdr

__all__ = ["OpResult", "TxResult", "build_result"]

_T = xdr.OperationType
# Operation type -> (OperationResultTr attribute, result class, result-code enum).
_ARMS: Final[dict[xdr.OperationType, tuple[str, type, type]]] = {
    _T.CREATE_ACCOUNT: (
        "create_account_result",
        xdr.CreateAccountResult,
        xdr.CreateAccountResultCode,
    ),
    _T.PAYMENT: ("payment_result", xdr.PaymentResult, xdr.PaymentResultCode),
    _T.CHANGE_TRUST: ("change_trust_result", xdr.ChangeTrustResult, xdr.ChangeTrustResultCode),
    _T.BEGIN_SPONSORING_FUTURE_RESERVES: (
        "begin_sponsoring_future_reserves_result",
        xdr.BeginSponsoringFutureReservesResult,
        xdr.BeginSponsoringFutureReservesResultCode,
    ),
    _T.END_SPONSORING_FUTURE_RESERVES: (
        "end_sponsoring_future_reserves_result",
        xdr.EndSponsoringFutureReservesResult,
        xdr.EndSponsoringFutureReservesResultCode,
    ),
}


@dataclass(frozen=True)
class OpResult:
    """One operation's outcome: an inner code of its type, or an outer code (no source, ...)."""

    op_type: xdr.OperationType
    value: int = 0
    outer: xdr.OperationResultCode | None = None

    @property
    def ok(self) -> bool:
        """Whether the operation succeeded."""
        return self.outer is None and self.value == 0

    def to_xdr(self) -> xdr.OperationResult:
        """The ``OperationResult`` XDR object."""
        if self.outer is not None:
            return xdr.OperationResult(self.outer)
        tr = xdr.OperationResultTr(self.op_type)
        if self.op_type == _T.INVOKE_HOST_FUNCTION:
            code = xdr.InvokeHostFunctionResultCode(self.value)
            # On success core returns the hash of the return value and events; any 32 bytes do.
            success = xdr.Hash(hashlib.sha256(b"sandbox").digest()) if self.value == 0 else None
            tr.invoke_host_function_result = xdr.InvokeHostFunctionResult(code, success)
        else:
            attribute, result_cls, code_cls = _ARMS[self.op_type]
            setattr(tr, attribute, result_cls(code_cls(self.value)))
        return xdr.OperationResult(xdr.OperationResultCode.opINNER, tr)


@dataclass(frozen=True)
class TxResult:
    """A transaction result as XDR (base64) plus the Horizon codes decoded from it."""

    result_xdr: str
    codes: ResultCodes

    @property
    def successful(self) -> bool:
        """Whether the tx (or, for a fee-bump, its inner tx) succeeded."""
        return self.codes.transaction in {"tx_success", "tx_fee_bump_inner_success"}


def _result_body(
    code: xdr.TransactionResultCode, ops: list[OpResult] | None
) -> tuple[xdr.TransactionResultCode, list[xdr.OperationResult] | None]:
    # Only tx_success and tx_failed carry operation results; every other arm is void.
    carries_ops = code in {xdr.TransactionResultCode.txSUCCESS, xdr.TransactionResultCode.txFAILED}
    return code, [op.to_xdr() for op in ops or []] if carries_ops else None


def build_result(
    code: xdr.TransactionResultCode,
    fee_charged: int,
    ops: list[OpResult] | None = None,
    *,
    fee_bump_inner_hash: str | None = None,
    inner_fee_charged: int = 0,
) -> TxResult:
    """Build a ``TransactionResult``; with ``fee_bump_inner_hash``, ``code`` is the inner result."""
    if fee_bump_inner_hash is None:
        tx_code, results = _result_body(code, ops)
        body = xdr.TransactionResultResult(tx_code, results=results)
    else:
        tx_code, results = _result_body(code, ops)
        inner = xdr.InnerTransactionResult(
            xdr.Int64(inner_fee_charged),
            xdr.InnerTransactionResultResult(tx_code, results=results),
            xdr.InnerTransactionResultExt(0),
        )
        pair = xdr.InnerTransactionResultPair(xdr.Hash(bytes.fromhex(fee_bump_inner_hash)), inner)
        outer_code = (
            xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS
            if code == xdr.TransactionResultCode.txSUCCESS
            else xdr.TransactionResultCode.txFEE_BUMP_INNER_FAILED
        )
        body = xdr.TransactionResultResult(outer_code, inner_result_pair=pair)
    result = xdr.TransactionResult(xdr.Int64(fee_charged), body, xdr.TransactionResultExt(0))
    encoded = result.to_xdr()
    return TxResult(result_xdr=encoded, codes=decode_result_xdr(encoded))
