"""Horizon's JSON shapes (the fields we read) and their conversion to the port's Structs.

Unknown fields are ignored: Horizon adds fields between releases. Amount strings such as
``"10.0000000"`` go through :func:`common.money.parse_amount`, so they become exact stroops.
Conversion errors surface as ``ValueError`` (or msgspec's errors); the client turns them into
``ProviderResponseInvalid`` in its one conversion place.
"""

import msgspec

from common.money import parse_amount
from providers.stellar.port import (
    AccountState,
    AssetBalanceChange,
    FeeStats,
    LedgerInfo,
    PaymentRecord,
    TransactionInfo,
)
from providers.stellar.result_codes import ResultCodes, decode_result_xdr

__all__ = [
    "Problem",
    "WireAccount",
    "WireFeeStats",
    "WireLedgerPage",
    "WirePaymentPage",
    "WireTransaction",
    "account_state",
    "fee_stats",
    "ledger_info",
    "payment_record",
    "transaction_info",
]

# SEP-29 marks "memo required" with the data value "1", base64-encoded.
_MEMO_REQUIRED_VALUE = "MQ=="


class WireBalance(msgspec.Struct, frozen=True):
    """One entry of an account's ``balances``."""

    balance: str
    asset_type: str
    asset_code: str | None = None
    asset_issuer: str | None = None
    limit: str | None = None
    is_authorized: bool | None = None


class WireAccount(msgspec.Struct, frozen=True):
    """``GET /accounts/{id}``."""

    account_id: str
    sequence: str
    balances: list[WireBalance]
    subentry_count: int = 0
    num_sponsoring: int = 0
    num_sponsored: int = 0
    data: dict[str, str] = msgspec.field(default_factory=dict)


class WireResultCodes(msgspec.Struct, frozen=True):
    """``extras.result_codes`` of a ``transaction_failed`` problem."""

    transaction: str
    inner_transaction: str | None = None
    operations: list[str] = msgspec.field(default_factory=list)


class WireExtras(msgspec.Struct, frozen=True):
    """``extras`` of a problem body."""

    result_codes: WireResultCodes | None = None
    result_xdr: str | None = None
    envelope_xdr: str | None = None


class Problem(msgspec.Struct, frozen=True):
    """An RFC 7807 problem body as Horizon sends it."""

    type: str = ""
    title: str = ""
    status: int = 0
    detail: str = ""
    extras: WireExtras | None = None

    @property
    def kind(self) -> str:
        """The last path segment of ``type`` (``transaction_failed``, ``timeout``, ...)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    def result_codes(self) -> ResultCodes | None:
        """The result codes in the extras, if any."""
        codes = self.extras.result_codes if self.extras else None
        if codes is None:
            return None
        return ResultCodes(
            transaction=codes.transaction,
            inner_transaction=codes.inner_transaction,
            operations=tuple(codes.operations),
        )


class WireTimeBounds(msgspec.Struct, frozen=True):
    """``preconditions.timebounds``."""

    min_time: str | None = None
    max_time: str | None = None


class WirePreconditions(msgspec.Struct, frozen=True):
    """``preconditions``."""

    timebounds: WireTimeBounds | None = None


class WireTransaction(msgspec.Struct, frozen=True):
    """A transaction resource (``GET /transactions/{hash}``, submit answer, joined tx)."""

    hash: str
    ledger: int
    successful: bool
    created_at: str
    source_account: str
    source_account_sequence: str
    fee_charged: str | int
    result_xdr: str
    memo_type: str = "none"
    memo: str | None = None
    preconditions: WirePreconditions | None = None


class WireBalanceChange(msgspec.Struct, frozen=True):
    """One ``asset_balance_changes`` entry."""

    type: str
    from_: str = msgspec.field(name="from")
    to: str = ""
    amount: str = "0"
    asset_code: str | None = None
    asset_issuer: str | None = None


class WirePayment(msgspec.Struct, frozen=True):
    """A payments-endpoint record of any type; type-specific fields are optional."""

    id: str
    paging_token: str
    type: str
    created_at: str
    transaction_hash: str
    source_account: str
    transaction_successful: bool = True
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    amount: str | None = None
    asset_type: str | None = None
    asset_code: str | None = None
    asset_issuer: str | None = None
    funder: str | None = None
    account: str | None = None
    starting_balance: str | None = None
    asset_balance_changes: list[WireBalanceChange] | None = None
    transaction: WireTransaction | None = None


class WirePaymentRecords(msgspec.Struct, frozen=True):
    """``_embedded`` of a payments page."""

    records: list[WirePayment]


class WirePaymentPage(msgspec.Struct, frozen=True):
    """A HAL page of payment records."""

    embedded: WirePaymentRecords = msgspec.field(name="_embedded")


class WireLedger(msgspec.Struct, frozen=True):
    """A ledger resource."""

    sequence: int
    closed_at: str
    base_fee_in_stroops: int
    base_reserve_in_stroops: int


class WireLedgerRecords(msgspec.Struct, frozen=True):
    """``_embedded`` of a ledgers page."""

    records: list[WireLedger]


class WireLedgerPage(msgspec.Struct, frozen=True):
    """A HAL page of ledgers."""

    embedded: WireLedgerRecords = msgspec.field(name="_embedded")


class WireFeeDistribution(msgspec.Struct, frozen=True):
    """``fee_charged`` / ``max_fee`` percentiles (strings of stroops)."""

    p50: str
    p99: str


class WireFeeStats(msgspec.Struct, frozen=True):
    """``GET /fee_stats``."""

    last_ledger: str
    last_ledger_base_fee: str
    fee_charged: WireFeeDistribution
    max_fee: WireFeeDistribution


def account_state(wire: WireAccount, usdc_issuer: str) -> AccountState:
    """Convert an account resource; USDC is the ``USDC`` line of ``usdc_issuer``."""
    xlm = 0
    usdc: int | None = None
    usdc_limit: int | None = None
    authorized = False
    for line in wire.balances:
        if line.asset_type == "native":
            xlm = parse_amount(line.balance)
        elif line.asset_code == "USDC" and line.asset_issuer == usdc_issuer:
            usdc = parse_amount(line.balance)
            usdc_limit = parse_amount(line.limit) if line.limit is not None else None
            authorized = bool(line.is_authorized)
    return AccountState(
        account_id=wire.account_id,
        exists=True,
        sequence=_int(wire.sequence),
        xlm=xlm,
        usdc=usdc,
        usdc_limit=usdc_limit,
        usdc_authorized=authorized,
        subentry_count=wire.subentry_count,
        num_sponsoring=wire.num_sponsoring,
        num_sponsored=wire.num_sponsored,
        memo_required=wire.data.get("config.memo_required") == _MEMO_REQUIRED_VALUE,
    )


def _int(text: str | int) -> int:
    """Parse Horizon's int64-as-string fields strictly (digits only)."""
    if isinstance(text, int):
        return text
    if not text.isdigit():
        raise ValueError(f"not an unsigned integer: {text!r}")
    return int(text)


def transaction_info(
    wire: WireTransaction, balance_changes: tuple[AssetBalanceChange, ...] = ()
) -> TransactionInfo:
    """Convert a transaction resource; result codes come from decoding ``result_xdr``."""
    bounds = wire.preconditions.timebounds if wire.preconditions else None
    max_time = _int(bounds.max_time) if bounds and bounds.max_time else None
    return TransactionInfo(
        hash=wire.hash,
        found=True,
        successful=wire.successful,
        ledger=wire.ledger,
        created_at=wire.created_at,
        source_account=wire.source_account,
        source_account_sequence=_int(wire.source_account_sequence),
        fee_charged=_int(wire.fee_charged),
        max_time=max_time or None,
        memo_type=wire.memo_type,
        memo=wire.memo,
        result_xdr=wire.result_xdr,
        result_codes=decode_result_xdr(wire.result_xdr),
        asset_balance_changes=balance_changes,
    )


def _balance_change(wire: WireBalanceChange) -> AssetBalanceChange:
    return AssetBalanceChange(
        asset_code=wire.asset_code,
        asset_issuer=wire.asset_issuer,
        type=wire.type,
        from_address=wire.from_,
        to_address=wire.to,
        amount=parse_amount(wire.amount),
    )


def payment_record(wire: WirePayment) -> PaymentRecord:
    """Convert one payments record; ``create_account`` maps funder/account/starting_balance."""
    is_create = wire.type == "create_account"
    amount_text = wire.starting_balance if is_create else wire.amount
    tx = wire.transaction
    return PaymentRecord(
        id=wire.id,
        paging_token=wire.paging_token,
        type=wire.type,
        created_at=wire.created_at,
        transaction_hash=wire.transaction_hash,
        transaction_successful=wire.transaction_successful,
        source_account=wire.source_account,
        from_address=wire.funder if is_create else wire.from_,
        to_address=wire.account if is_create else wire.to,
        amount=parse_amount(amount_text) if amount_text is not None else None,
        asset_type="native" if is_create else wire.asset_type,
        asset_code=wire.asset_code,
        asset_issuer=wire.asset_issuer,
        asset_balance_changes=tuple(_balance_change(c) for c in wire.asset_balance_changes or ()),
        memo_type=tx.memo_type if tx else None,
        memo=tx.memo if tx else None,
    )


def ledger_info(wire: WireLedgerPage) -> LedgerInfo:
    """The first ledger of a ``/ledgers?order=desc&limit=1`` page."""
    if not wire.embedded.records:
        raise ValueError("Horizon returned no ledger")
    ledger = wire.embedded.records[0]
    return LedgerInfo(
        sequence=ledger.sequence,
        closed_at=ledger.closed_at,
        base_fee=ledger.base_fee_in_stroops,
        base_reserve=ledger.base_reserve_in_stroops,
    )


def fee_stats(wire: WireFeeStats) -> FeeStats:
    """Convert ``/fee_stats`` (every number is a string there)."""
    return FeeStats(
        last_ledger=_int(wire.last_ledger),
        last_ledger_base_fee=_int(wire.last_ledger_base_fee),
        fee_charged_p50=_int(wire.fee_charged.p50),
        fee_charged_p99=_int(wire.fee_charged.p99),
        max_fee_p50=_int(wire.max_fee.p50),
    )
