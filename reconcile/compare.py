"""The pure comparison: the ledger side and the chain side in, one record per check out.

No I/O here. :mod:`reconcile.gather` reads both sides at one pinned point; :func:`compare`
turns them into :class:`Discrepancy` records (``MATCHED`` ones included, so a run can say what
it checked), and :func:`drift_of` / :func:`unmatched_of` aggregate them for the run and the
gauges. Amounts are integer minor units (scale 7, stroops); ``difference = ledger - external``.

The rules, per marketplace and asset (design.md 2, the postings of every flow):

- **Wallets** (``stellar``/``WALLET_BALANCE``, one per wallet or user account). A user's wallet
  holds on chain what the ledger calls the user's *posted* balance (available + reserved):
  a reservation (order reserve, withdrawal hold) is a ledger hold only, the USDC stays in the
  wallet until the escrow is funded or the payment leaves. Two known gaps are modelled, not
  reported: top-ups credited in the ledger (``clearing:topups -> user``) whose treasury payment
  has not been delivered on chain yet (``topups.credit_transfer_id`` set, ``delivered_at``
  NULL) are *in transit* and subtracted; and transactions of operations still running that
  already landed on chain (escrow funding, payouts, withdrawals, deliveries: the ledger books
  them when the operation ends) are *unbooked movements*, added with their on-chain amounts.
  So ``ledger = posted - undelivered top-ups + unbooked net``, ``external = wallet USDC``.
  A wallet not activated holds nothing (external 0).
- **Escrows** (``trustless_work``). ``ESCROW_BALANCE``: ``escrow:<ord>`` posted balance plus
  unbooked movements against the contract's USDC. The reserve is a pending transfer, so before
  funding both are 0. ``ESCROW_STATE``: a ledger ``RELEASED`` escrow needs a released or
  resolved contract, ``REFUNDED`` a resolved one; any other status needs a contract that is
  neither, unless a settlement of it has landed and is not booked yet.
- **Platform wallet** (``stellar``/``PLATFORM_FEES``). The platform account receives the platform
  fee of every payout and is also the treasury that delivers top-ups, for every marketplace of
  the installation. Its USDC is compared with the sum over all marketplaces of ``fees:platform``
  and ``treasury:stellar`` (posted; a delivery hold is pending), plus unbooked movements.
  ``fees:trustless_work`` is paid to Trustless Work's address, which other customers share:
  it cannot be reconciled from the chain and is not checked.
- **Clearing** (``airtm``/``CLEARING_AGE``). ``clearing:*`` accounts return to zero per item;
  one whose posted balance has been non-zero for longer than the configured age is reported
  with its balance as the difference (a delivery or settlement is stuck).
- **Books** (``ledger``). ``TRIAL_BALANCE``: debits equal credits, posted and pending, for the
  marketplace and asset. ``ACCOUNT_BOUND``: no bounded account over its bound (one aggregate
  record when all hold, one per breach otherwise). ``OPERATION_STUCK``: a durable operation
  still running after the threshold (one record per stuck operation; nothing when none).
"""

from collections.abc import Iterable, Sequence
from typing import Final

from reconcile.sides import (
    ACCOUNT_CLASSES,
    KINDS,
    SOURCES,
    STATUSES,
    BoundBreach,
    ChainSide,
    ClearingSide,
    CompareSettings,
    ContractState,
    Discrepancy,
    Drift,
    EscrowSide,
    LedgerSide,
    Movement,
    Source,
    Status,
    StuckOperation,
    UserSide,
)

__all__ = [
    "ACCOUNT_CLASSES",
    "KINDS",
    "SOURCES",
    "STATUSES",
    "BoundBreach",
    "ChainSide",
    "ClearingSide",
    "CompareSettings",
    "ContractState",
    "Discrepancy",
    "Drift",
    "EscrowSide",
    "LedgerSide",
    "Movement",
    "StuckOperation",
    "UserSide",
    "compare",
    "confirmed",
    "drift_of",
    "unmatched_of",
]


# The chain flags that settle an escrow of each final ledger status.
_SETTLED_BY: Final = {"RELEASED": ("released", "resolved"), "REFUNDED": ("resolved",)}


def _net(movements: Iterable[Movement]) -> dict[str, int]:
    """Net USDC each address gained from the unbooked movements."""
    net: dict[str, int] = {}
    for move in movements:
        net[move.from_address] = net.get(move.from_address, 0) - move.amount
        net[move.to_address] = net.get(move.to_address, 0) + move.amount
    return net


def _balance(
    *,
    source: Source,
    kind: str,
    account_class: str,
    ledger: int,
    external: int | None,
    has_account: bool,
    detail: str,
    resource: tuple[str | None, str | None] = (None, None),
    account_id: str | None = None,
    external_ref: str | None = None,
) -> Discrepancy:
    """One balance check: MATCHED, MISMATCH, or missing on the side that has nothing."""
    seen = 0 if external is None else external
    difference = ledger - seen
    status: Status = "MATCHED"
    if difference != 0:
        if external is None:
            status = "MISSING_AT_PROVIDER"
        elif not has_account:
            status = "MISSING_IN_LEDGER"
        else:
            status = "MISMATCH"
    return Discrepancy(
        source=source,
        kind=kind,
        status=status,
        account_class=account_class,
        detail=detail,
        resource_type=resource[0],
        resource_id=resource[1],
        account_id=account_id,
        external_ref=external_ref,
        ledger_amount=ledger,
        external_amount=seen,
        difference=difference,
    )


def _wallets(ledger: LedgerSide, chain: ChainSide, net: dict[str, int]) -> list[Discrepancy]:
    items = []
    for user in ledger.users:
        unbooked = net.get(user.public_key, 0) if user.public_key else 0
        expected = user.posted - user.undelivered_topups + unbooked
        external = chain.wallets.get(user.public_key) if user.public_key else None
        if user.public_key is not None and external is None:
            # Not activated, or no trustline: it can hold no USDC (and holds none).
            external = 0
        detail = (
            f"posted {user.posted}, top-ups in transit {user.undelivered_topups}, "
            f"unbooked on chain {unbooked}"
        )
        items.append(
            _balance(
                source="stellar",
                kind="WALLET_BALANCE",
                account_class="user",
                ledger=expected,
                external=external,
                has_account=user.account_id is not None,
                detail=detail,
                resource=("user", user.user_id),
                account_id=user.account_id,
                external_ref=user.public_key,
            )
        )
    return items


def _is_settled_on_chain(status: str, contract: ContractState) -> bool:
    flags = {"released": contract.is_released, "resolved": contract.is_resolved}
    return any(flags[name] for name in _SETTLED_BY.get(status, ("released", "resolved")))


def _escrow_state(escrow: EscrowSide, contract: ContractState, in_flight: bool) -> Discrepancy:
    settled_chain = contract.is_released or contract.is_resolved
    if escrow.status in _SETTLED_BY:
        agrees = _is_settled_on_chain(escrow.status, contract)
    else:
        # A settlement that landed and is not booked yet explains a settled contract.
        agrees = not settled_chain or in_flight
    flags = (
        f"released={contract.is_released} resolved={contract.is_resolved} "
        f"disputed={contract.is_disputed}"
    )
    return Discrepancy(
        source="trustless_work",
        kind="ESCROW_STATE",
        status="MATCHED" if agrees else "MISMATCH",
        account_class="escrow",
        detail=f"ledger status {escrow.status}; contract {flags}",
        resource_type="escrow",
        resource_id=escrow.escrow_id,
        account_id=escrow.account_id,
        external_ref=escrow.contract_id,
    )


def _escrows(ledger: LedgerSide, chain: ChainSide, net: dict[str, int]) -> list[Discrepancy]:
    senders = {move.from_address for move in chain.unbooked}
    items = []
    for escrow in ledger.escrows:
        contract = chain.contracts.get(escrow.contract_id)
        unbooked = net.get(escrow.contract_id, 0)
        items.append(
            _balance(
                source="trustless_work",
                kind="ESCROW_BALANCE",
                account_class="escrow",
                ledger=escrow.posted + unbooked,
                external=None if contract is None else contract.balance,
                has_account=escrow.account_id is not None,
                detail=f"posted {escrow.posted}, unbooked on chain {unbooked}",
                resource=("escrow", escrow.escrow_id),
                account_id=escrow.account_id,
                external_ref=escrow.contract_id,
            )
        )
        if contract is None:
            items.append(
                Discrepancy(
                    source="trustless_work",
                    kind="ESCROW_STATE",
                    status="MISSING_AT_PROVIDER",
                    account_class="escrow",
                    detail=f"ledger status {escrow.status}; contract not found",
                    resource_type="escrow",
                    resource_id=escrow.escrow_id,
                    account_id=escrow.account_id,
                    external_ref=escrow.contract_id,
                )
            )
        else:
            items.append(_escrow_state(escrow, contract, escrow.contract_id in senders))
    return items


def _platform(ledger: LedgerSide, chain: ChainSide, net: dict[str, int]) -> Discrepancy:
    unbooked = net.get(chain.platform_address, 0)
    return _balance(
        source="stellar",
        kind="PLATFORM_FEES",
        account_class="platform",
        ledger=ledger.platform_posted + unbooked,
        external=chain.platform_usdc,
        has_account=True,
        detail=(
            f"fees:platform + treasury:stellar over all marketplaces {ledger.platform_posted}, "
            f"unbooked on chain {unbooked}"
        ),
        resource=("wallet", chain.platform_address or None),
        external_ref=chain.platform_address or None,
    )


def _clearing(ledger: LedgerSide, settings: CompareSettings) -> list[Discrepancy]:
    items = []
    for account in ledger.clearing:
        since = account.nonzero_since
        age_s = 0.0 if since is None else (ledger.as_of - since).total_seconds()
        too_old = account.posted != 0 and age_s > settings.clearing_max_age_s
        detail = f"posted {account.posted}" + (
            "" if since is None else f", non-zero for {int(age_s)} s"
        )
        items.append(
            Discrepancy(
                source="airtm",
                kind="CLEARING_AGE",
                status="MISMATCH" if too_old else "MATCHED",
                account_class="clearing",
                detail=detail,
                resource_type="account",
                resource_id=account.code,
                account_id=account.account_id,
                ledger_amount=account.posted,
                external_amount=0 if too_old else account.posted,
                difference=account.posted if too_old else 0,
            )
        )
    return items


def _books(ledger: LedgerSide, settings: CompareSettings) -> list[Discrepancy]:
    balanced = ledger.posted_difference == 0 and ledger.pending_difference == 0
    items = [
        Discrepancy(
            source="ledger",
            kind="TRIAL_BALANCE",
            status="MATCHED" if balanced else "MISMATCH",
            account_class="books",
            detail=(
                f"debits - credits: posted {ledger.posted_difference}, "
                f"pending {ledger.pending_difference}"
            ),
            resource_type="ledger",
            resource_id=ledger.asset,
            ledger_amount=ledger.posted_difference,
            external_amount=0,
            difference=ledger.posted_difference,
        )
    ]
    items.extend(
        Discrepancy(
            source="ledger",
            kind="ACCOUNT_BOUND",
            status="MISMATCH",
            account_class="books",
            detail=f"{breach.code} is {breach.over} over its bound",
            resource_type="account",
            resource_id=breach.code,
            account_id=breach.account_id,
            ledger_amount=breach.over,
            external_amount=0,
            difference=breach.over,
        )
        for breach in ledger.bound_breaches
    )
    if not ledger.bound_breaches:
        items.append(
            Discrepancy(
                source="ledger",
                kind="ACCOUNT_BOUND",
                status="MATCHED",
                account_class="books",
                detail="every bounded account is within its bound",
                resource_type="ledger",
                resource_id=ledger.asset,
            )
        )
    for operation in ledger.operations:
        age_s = (ledger.as_of - operation.started_at).total_seconds()
        if age_s <= settings.operation_max_age_s:
            continue
        items.append(
            Discrepancy(
                source="ledger",
                kind="OPERATION_STUCK",
                status="MISMATCH",
                account_class="operation",
                detail=(
                    f"{operation.kind} running for {int(age_s)} s at step {operation.step} "
                    f"({operation.attempts} attempts)"
                ),
                resource_type=operation.resource_type,
                resource_id=operation.resource_id,
                external_ref=operation.operation_id,
            )
        )
    return items


def compare(
    ledger: LedgerSide, chain: ChainSide, settings: CompareSettings | None = None
) -> list[Discrepancy]:
    """Every check of the selected sources, in a stable order (books, stellar, escrows, airtm)."""
    chosen = settings or CompareSettings()
    net = _net(chain.unbooked)
    items: list[Discrepancy] = []
    if "ledger" in chosen.sources:
        items.extend(_books(ledger, chosen))
    if "stellar" in chosen.sources:
        items.extend(_wallets(ledger, chain, net))
        items.append(_platform(ledger, chain, net))
    if "trustless_work" in chosen.sources:
        items.extend(_escrows(ledger, chain, net))
    if "airtm" in chosen.sources:
        items.extend(_clearing(ledger, chosen))
    return items


def drift_of(items: Sequence[Discrepancy], sources: Iterable[str]) -> list[Drift]:
    """Drift per (source, account class) of the checked sources, zero rows included."""
    totals: dict[tuple[str, str], list[int]] = {
        (source, account_class): [0, 0, 0]
        for source in SOURCES
        if source in set(sources)
        for account_class in ACCOUNT_CLASSES[source]
    }
    for item in items:
        slot = totals.setdefault((item.source, item.account_class), [0, 0, 0])
        slot[2] += abs(item.ledger_amount or 0)
        if item.status != "MATCHED":
            slot[0] += item.difference or 0
            slot[1] += 1
    return [
        Drift(
            source=source,  # type: ignore[arg-type]
            account_class=account_class,
            amount=amount,
            unmatched=unmatched,
            checked_amount=checked,
        )
        for (source, account_class), (amount, unmatched, checked) in totals.items()
    ]


def unmatched_of(items: Iterable[Discrepancy]) -> list[Discrepancy]:
    """The records that are not ``MATCHED``."""
    return [item for item in items if item.status != "MATCHED"]


def confirmed(first: Sequence[Discrepancy], second: Sequence[Discrepancy]) -> list[Discrepancy]:
    """The second pass, where a break that matched in the first pass counts as matched.

    Money in flight between the two reads (a deposit not booked yet, a settlement between its
    landing and its booking) breaks one pass and not the other; a real drift breaks both.
    """
    first_by_key = {item.key: item for item in first}
    kept = []
    for item in second:
        earlier = first_by_key.get(item.key)
        if item.status != "MATCHED" and earlier is not None and earlier.status == "MATCHED":
            kept.append(earlier)
        else:
            kept.append(item)
    return kept
