"""Reading both sides of a run at one pinned point.

The pin: the chain's latest ledger number N is read first, then the ledger snapshot (one
REPEATABLE READ, READ ONLY transaction: every read sees the same committed state and the last
transfer sequence is recorded), then every chain read, then the ledger number again. When no
ledger closed meanwhile, the chain reads are the state at N, which is older than the snapshot:
whatever landed at or before N and is not booked belongs to an operation that committed its
transaction hash before submitting it, so the snapshot knows it, and a hash lookup (ledger <= N)
turns it into unbooked :class:`~reconcile.compare.Movement` records. When the chain moved during
the reads the whole gather is repeated (a few times; then the last one is used and the runner's
confirmation pass filters what was only in flight).

Chain reads run outside any database transaction, concurrently, at most ``concurrency`` at a
time: one ``GET /accounts/{G}`` per wallet, escrows by batches of contract ids.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Final, TypeVar, cast

import asyncpg
import msgspec
from stellar_sdk import Payment, TransactionEnvelope

from flows.operations import OperationDeps
from providers.stellar.port import WalletNetwork
from providers.trustless_work.port import Escrow, EscrowProvider
from reconcile import queries
from reconcile.compare import (
    BoundBreach,
    ChainSide,
    ClearingSide,
    ContractState,
    EscrowSide,
    LedgerSide,
    Movement,
    StuckOperation,
    UserSide,
)

__all__ = ["ChainReader", "Gathered", "UnbookedTx", "chain_reader", "gather", "read_ledger"]

_SCALE: Final = Decimal(10_000_000)
# Trustless Work reads escrows by contract ids; keep each request small.
_ESCROW_BATCH: Final = 20
_PIN_ATTEMPTS: Final = 3
T = TypeVar("T")


class UnbookedTx(msgspec.Struct, frozen=True, kw_only=True):
    """A transaction of a running operation: its hash and signed envelope."""

    tx_hash: str
    envelope_xdr: str


class Gathered(msgspec.Struct, frozen=True, kw_only=True):
    """Both sides, pinned."""

    ledger: LedgerSide
    chain: ChainSide


def _rows(rows: list[asyncpg.Record], kind: type[T]) -> tuple[T, ...]:
    return tuple(msgspec.convert(dict(row), kind) for row in rows)


async def read_ledger(
    pool: asyncpg.Pool, marketplace_id: str, asset: str, *, operation_max_age_s: int
) -> tuple[LedgerSide, tuple[UnbookedTx, ...]]:
    """The ledger side in one read-only snapshot, and the transactions it has not booked."""
    async with pool.acquire() as proxy:
        conn = cast(asyncpg.Connection, proxy)
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            pinned = await conn.fetchrow(queries.POSITION, marketplace_id)
            assert pinned is not None
            zero_sum = await conn.fetchrow(queries.ZERO_SUM, marketplace_id, asset)
            assert zero_sum is not None
            side = LedgerSide(
                marketplace_id=marketplace_id,
                asset=asset,
                position=pinned["position"],
                as_of=pinned["as_of"],
                users=_rows(await conn.fetch(queries.USERS, marketplace_id, asset), UserSide),
                escrows=_rows(await conn.fetch(queries.ESCROWS, marketplace_id, asset), EscrowSide),
                platform_posted=await conn.fetchval(queries.PLATFORM_POSTED, asset),
                clearing=_rows(
                    await conn.fetch(queries.CLEARING, marketplace_id, asset), ClearingSide
                ),
                pending_difference=zero_sum["pending_difference"],
                posted_difference=zero_sum["posted_difference"],
                bound_breaches=_rows(
                    await conn.fetch(queries.BOUND_BREACHES, marketplace_id, asset), BoundBreach
                ),
                operations=_rows(
                    await conn.fetch(
                        queries.STUCK_OPERATIONS, marketplace_id, float(operation_max_age_s)
                    ),
                    StuckOperation,
                ),
            )
            unbooked = _rows(await conn.fetch(queries.UNBOOKED_TRANSACTIONS), UnbookedTx)
    return side, unbooked


class ChainReader:
    """Reads wallets, escrow contracts and the platform wallet through the provider ports."""

    def __init__(
        self,
        network: WalletNetwork,
        escrow: EscrowProvider | None,
        *,
        platform_address: str,
        passphrase: str,
        usdc_issuer: str,
        concurrency: int = 16,
    ) -> None:
        self._network = network
        self._escrow = escrow
        self.platform_address = platform_address
        self._passphrase = passphrase
        self._usdc_issuer = usdc_issuer
        self._limit = asyncio.Semaphore(concurrency)

    async def _bounded(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._limit:
            return await call()

    async def ledger_number(self) -> int:
        """The latest closed chain ledger."""
        return (await self._network.latest_ledger()).sequence

    async def usdc(self, address: str) -> int | None:
        """USDC held by an account; None when it does not exist or has no trustline."""
        state = await self._bounded(lambda: self._network.get_account(address))
        return state.usdc if state.exists else None

    async def contracts(self, contract_ids: Sequence[str]) -> dict[str, ContractState]:
        """Escrow contracts found at the provider, by id (missing ones are left out)."""
        if self._escrow is None or not contract_ids:
            return {}
        escrow = self._escrow
        batches = [
            contract_ids[start : start + _ESCROW_BATCH]
            for start in range(0, len(contract_ids), _ESCROW_BATCH)
        ]

        async def read(batch: Sequence[str]) -> tuple[Escrow, ...]:
            return await self._bounded(lambda: escrow.get_escrows(batch))

        replies = await asyncio.gather(*(read(batch) for batch in batches))
        return {
            found.contract_id: ContractState(
                contract_id=found.contract_id,
                balance=found.balance_minor,
                is_released=found.is_released,
                is_resolved=found.is_resolved,
                is_disputed=found.is_disputed,
            )
            for reply in replies
            for found in reply
        }

    async def movements(self, tx: UnbookedTx, pinned_ledger: int) -> list[Movement]:
        """USDC the transaction moved, if it landed successfully at or before the pin."""
        info = await self._bounded(
            lambda: self._network.get_transaction(tx.tx_hash, with_balance_changes=True)
        )
        if not info.found or not info.successful or (info.ledger or 0) > pinned_ledger:
            return []
        moved = [
            Movement(from_address=c.from_address, to_address=c.to_address, amount=c.amount)
            for c in info.asset_balance_changes
            if c.asset_code == "USDC" and c.asset_issuer in (None, self._usdc_issuer)
        ]
        return moved + self._payments(tx.envelope_xdr)

    def _payments(self, envelope_xdr: str) -> list[Movement]:
        """USDC payment operations of a signed envelope (host functions report their own)."""
        transaction = TransactionEnvelope.from_xdr(envelope_xdr, self._passphrase).transaction
        moved = []
        for operation in transaction.operations:
            if not isinstance(operation, Payment):
                continue
            asset = operation.asset
            if asset.code != "USDC" or asset.issuer != self._usdc_issuer:
                continue
            source = operation.source or transaction.source
            moved.append(
                Movement(
                    from_address=source.account_id,
                    to_address=operation.destination.account_id,
                    amount=int(Decimal(operation.amount) * _SCALE),
                )
            )
        return moved


def chain_reader(deps: OperationDeps, *, concurrency: int = 16) -> ChainReader:
    """A reader over the process's provider clients (the platform wallet is ``deps``')."""
    return ChainReader(
        deps.network,
        deps.escrow,
        platform_address=deps.platform().public_key,
        passphrase=deps.passphrase,
        usdc_issuer=deps.usdc_issuer,
        concurrency=concurrency,
    )


async def _read_chain(
    reader: ChainReader, ledger: LedgerSide, unbooked: Sequence[UnbookedTx]
) -> tuple[ChainSide, bool]:
    """One pass of chain reads; whether no ledger closed during it."""
    before = await reader.ledger_number()
    addresses = sorted({u.public_key for u in ledger.users if u.public_key})
    balances, contracts, platform = await asyncio.gather(
        asyncio.gather(*(reader.usdc(address) for address in addresses)),
        reader.contracts([e.contract_id for e in ledger.escrows]),
        reader.usdc(reader.platform_address),
    )
    moves = await asyncio.gather(*(reader.movements(tx, before) for tx in unbooked))
    after = await reader.ledger_number()
    chain = ChainSide(
        ledger=before,
        wallets=dict(zip(addresses, balances, strict=True)),
        contracts=contracts,
        platform_address=reader.platform_address,
        platform_usdc=platform,
        unbooked=tuple(move for tx_moves in moves for move in tx_moves),
    )
    return chain, before == after


async def gather(
    pool: asyncpg.Pool,
    reader: ChainReader,
    marketplace_id: str,
    asset: str,
    *,
    operation_max_age_s: int,
) -> Gathered:
    """Both sides at one pinned point (see the module docstring)."""
    for attempt in range(1, _PIN_ATTEMPTS + 1):
        pinned = await reader.ledger_number()
        ledger, unbooked = await read_ledger(
            pool, marketplace_id, asset, operation_max_age_s=operation_max_age_s
        )
        chain, is_stable = await _read_chain(reader, ledger, unbooked)
        if (is_stable and chain.ledger == pinned) or attempt == _PIN_ATTEMPTS:
            return Gathered(ledger=ledger, chain=chain)
    raise AssertionError("unreachable")
