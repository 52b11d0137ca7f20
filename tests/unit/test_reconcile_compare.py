"""The pure comparison: consistent sides match, and a change on one side breaks exactly there."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reconcile.compare import (
    ChainSide,
    ClearingSide,
    CompareSettings,
    ContractState,
    Discrepancy,
    EscrowSide,
    LedgerSide,
    Movement,
    UserSide,
    compare,
    confirmed,
    drift_of,
    unmatched_of,
)

NOW = datetime(2026, 1, 12, 10, tzinfo=UTC)
PLATFORM = "GPLATFORM"
amounts = st.integers(min_value=0, max_value=10**15)


@st.composite
def consistent(draw: st.DrawFn) -> tuple[LedgerSide, ChainSide]:
    """A ledger and a chain that agree: wallets hold posted - in transit + unbooked."""
    count = draw(st.integers(min_value=1, max_value=6))
    users, wallets, moves = [], {}, []
    for index in range(count):
        address = f"GUSER{index}"
        posted = draw(amounts)
        undelivered = draw(st.integers(min_value=0, max_value=posted))
        users.append(
            UserSide(
                user_id=f"usr_{index}",
                account_id=f"acc_{index}",
                public_key=address,
                posted=posted,
                undelivered_topups=undelivered,
            )
        )
        held = posted - undelivered
        # An unbooked movement out of the wallet (an escrow funding that landed).
        out = draw(st.integers(min_value=0, max_value=held))
        if out:
            moves.append(Movement(from_address=address, to_address="CESCROW", amount=out))
        wallets[address] = held - out
    funded = sum(m.amount for m in moves)
    escrow = EscrowSide(
        escrow_id="esc_1",
        order_id="ord_1",
        contract_id="CESCROW",
        status="FUNDING" if funded else "CREATED",
        account_id="acc_e",
        posted=0,
    )
    platform = draw(amounts)
    ledger = LedgerSide(
        marketplace_id="mkt_1",
        asset="USD",
        position=1,
        as_of=NOW,
        users=tuple(users),
        escrows=(escrow,),
        platform_posted=platform,
    )
    chain = ChainSide(
        ledger=9,
        wallets=wallets,
        contracts={"CESCROW": ContractState(contract_id="CESCROW", balance=funded)},
        platform_address=PLATFORM,
        platform_usdc=platform,
        unbooked=tuple(moves),
    )
    return ledger, chain


@given(consistent())
def test_consistent_sides_match_everywhere(sides: tuple[LedgerSide, ChainSide]) -> None:
    ledger, chain = sides
    items = compare(ledger, chain)
    assert unmatched_of(items) == []
    assert len(items) == len(ledger.users) + 1 + 2 + 2 + 0  # wallets, platform, escrow, books
    assert all(d.amount == 0 and d.unmatched == 0 for d in drift_of(items, ["ledger", "stellar"]))


@given(consistent(), st.data(), st.integers(min_value=1, max_value=10**12))
def test_an_extra_payment_breaks_exactly_its_wallet(
    sides: tuple[LedgerSide, ChainSide], data: st.DataObject, extra: int
) -> None:
    ledger, chain = sides
    victim = data.draw(st.sampled_from(ledger.users))
    wallets = dict(chain.wallets)
    wallets[victim.public_key or ""] = (wallets[victim.public_key or ""] or 0) + extra
    items = compare(ledger, ChainSide(**{**_fields(chain), "wallets": wallets}))
    [broken] = unmatched_of(items)
    assert (broken.kind, broken.status, broken.resource_id) == (
        "WALLET_BALANCE",
        "MISMATCH",
        victim.user_id,
    )
    assert broken.difference == -extra
    assert broken.ledger_amount is not None
    assert broken.external_amount is not None
    assert broken.ledger_amount - broken.external_amount == -extra
    [user_drift] = [d for d in drift_of(items, ["stellar"]) if d.account_class == "user"]
    assert (user_drift.amount, user_drift.unmatched) == (-extra, 1)


@given(consistent(), st.integers(min_value=-(10**12), max_value=10**12).filter(bool))
def test_a_platform_wallet_change_breaks_platform_fees(
    sides: tuple[LedgerSide, ChainSide], delta: int
) -> None:
    ledger, chain = sides
    usdc = (chain.platform_usdc or 0) + delta
    items = compare(ledger, ChainSide(**{**_fields(chain), "platform_usdc": usdc}))
    [broken] = unmatched_of(items)
    assert (broken.kind, broken.difference) == ("PLATFORM_FEES", -delta)


def _fields(chain: ChainSide) -> dict[str, object]:
    return {name: getattr(chain, name) for name in chain.__struct_fields__}


def _escrow_items(
    status: str, contract: ContractState, unbooked: tuple[Movement, ...] = ()
) -> list[Discrepancy]:
    ledger = LedgerSide(
        marketplace_id="mkt_1",
        asset="USD",
        position=1,
        as_of=NOW,
        escrows=(
            EscrowSide(
                escrow_id="esc_1",
                order_id="ord_1",
                contract_id="C1",
                status=status,
                account_id="acc_e",
                posted=contract.balance,
            ),
        ),
    )
    chain = ChainSide(ledger=3, contracts={"C1": contract}, unbooked=unbooked)
    return compare(ledger, chain, _only("trustless_work"))


def _only(source: str) -> CompareSettings:
    return CompareSettings(sources=frozenset({source}))


def test_escrow_state_follows_the_ledger_status() -> None:
    released = ContractState(contract_id="C1", balance=0, is_released=True)
    resolved = ContractState(contract_id="C1", balance=0, is_resolved=True)
    open_ = ContractState(contract_id="C1", balance=5)
    cases = [
        ("RELEASED", released, "MATCHED"),
        ("RELEASED", resolved, "MATCHED"),  # a FULL_RELEASE or SPLIT goes through resolve
        ("REFUNDED", resolved, "MATCHED"),
        ("REFUNDED", released, "MISMATCH"),
        ("RELEASED", open_, "MISMATCH"),  # the ledger booked a release the chain never did
        ("FUNDED", released, "MISMATCH"),  # released behind the ledger's back
        ("FUNDED", open_, "MATCHED"),
    ]
    for status, contract, expected in cases:
        [_, state] = _escrow_items(status, contract)
        assert state.status == expected, (status, contract)


def test_a_landed_unbooked_release_explains_a_released_contract() -> None:
    paid = (Movement(from_address="C1", to_address="GSELLER", amount=5),)
    contract = ContractState(contract_id="C1", balance=0, is_released=True)
    ledger = LedgerSide(
        marketplace_id="mkt_1",
        asset="USD",
        position=1,
        as_of=NOW,
        escrows=(
            EscrowSide(
                escrow_id="esc_1",
                order_id="ord_1",
                contract_id="C1",
                status="RELEASING",
                account_id="acc_e",
                posted=5,
            ),
        ),
    )
    chain = ChainSide(ledger=3, contracts={"C1": contract}, unbooked=paid)
    assert unmatched_of(compare(ledger, chain, _only("trustless_work"))) == []


def test_a_missing_contract_and_a_wallet_without_ledger_account() -> None:
    ledger = LedgerSide(
        marketplace_id="mkt_1",
        asset="USD",
        position=1,
        as_of=NOW,
        users=(UserSide(user_id="usr_1", account_id=None, public_key="G1", posted=0),),
        escrows=(
            EscrowSide(
                escrow_id="esc_1",
                order_id="ord_1",
                contract_id="C1",
                status="FUNDED",
                account_id="acc_e",
                posted=9,
            ),
        ),
    )
    chain = ChainSide(ledger=3, wallets={"G1": 4}, platform_usdc=0)
    statuses = {(d.kind, d.status, d.difference) for d in unmatched_of(compare(ledger, chain))}
    assert statuses == {
        ("WALLET_BALANCE", "MISSING_IN_LEDGER", -4),
        ("ESCROW_BALANCE", "MISSING_AT_PROVIDER", 9),
        ("ESCROW_STATE", "MISSING_AT_PROVIDER", None),
    }


@given(st.integers(min_value=-(10**9), max_value=10**9).filter(bool))
def test_clearing_age_and_books(posted: int) -> None:
    clearing = ClearingSide(
        code="clearing:topups",
        account_id="acc_c",
        posted=posted,
        nonzero_since=NOW - timedelta(hours=2),
    )
    ledger = LedgerSide(
        marketplace_id="mkt_1",
        asset="USD",
        position=1,
        as_of=NOW,
        clearing=(clearing,),
        posted_difference=posted,
    )
    items = compare(ledger, ChainSide(ledger=1), _only("airtm"))
    assert [(d.kind, d.difference) for d in unmatched_of(items)] == [("CLEARING_AGE", posted)]
    books = compare(ledger, ChainSide(ledger=1), _only("ledger"))
    assert [(d.kind, d.difference) for d in unmatched_of(books)] == [("TRIAL_BALANCE", posted)]


@given(consistent(), st.integers(min_value=1, max_value=10**9))
def test_a_break_seen_once_is_not_confirmed(
    sides: tuple[LedgerSide, ChainSide], extra: int
) -> None:
    ledger, chain = sides
    first = compare(ledger, chain)
    user = ledger.users[0]
    moved = {
        **chain.wallets,
        user.public_key or "": (chain.wallets[user.public_key or ""] or 0) + extra,
    }
    second = compare(ledger, ChainSide(**{**_fields(chain), "wallets": moved}))
    assert unmatched_of(confirmed(first, second)) == []
    assert unmatched_of(confirmed(second, second)) == unmatched_of(second)
