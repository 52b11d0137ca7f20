"""The deposit monitor: polls every active wallet's Horizon payments and credits deposits.

A pass (:meth:`DepositMonitor.run_once`):

1. opens a cursor for every active wallet that has none (from its first operation);
2. claims wallets not polled since the pass began, in batches, with a lease
   (``FOR UPDATE SKIP LOCKED``), so several monitor processes split the work;
3. for each claimed wallet, with a bounded number of Horizon reads in flight, reads pages
   after the stored cursor with no database connection held, and credits each page in one
   short transaction (:func:`flows.deposits.credit_page`: compare-and-set on the cursor,
   transfers, deposit rows, events, new cursor);
4. stamps the batch polled; a wallet with pages left is claimed again in the same pass; one
   whose read failed is kept off until the next pass retries it.

Why one cursor per wallet rather than one over the global ``/payments`` stream: the sandbox
serves only ``/accounts/{id}/payments``; per-wallet cursors need no backfill when a wallet is
added; and crediting never depends on where a shared cursor stands. The price is one read per
wallet per pass (10,000 wallets at 8 reads in flight: about 10,000 requests a pass), which a
self-hosted Horizon carries; a global scanner, if ever needed, plugs into the same
:func:`flows.deposits.credit_payments` with its own cursor row.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Final, cast

import asyncpg
import msgspec

from flows.background import BackgroundLoop
from flows.deposits import PageOutcome, credit_page
from flows.queries import deposits as queries
from flows.queries.deposits import PollState, WalletScan
from ledger import run_in_transaction
from providers.stellar.port import PaymentPage, WalletNetwork

__all__ = ["DepositMonitor", "MonitorSettings", "PassSummary", "WalletPoll"]

_log = logging.getLogger(__name__)
_PAGE_LIMIT_MAX: Final = 200


class MonitorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the monitor polls.

    Attributes:
        poll_s: Seconds between passes (a Stellar ledger closes about every 5 s).
        batch_size: Wallets claimed per claim statement.
        concurrency: Horizon reads in flight at once.
        page_limit: Records per Horizon page (1..200).
        pages_per_wallet_max: Pages read from one wallet before it yields its turn; the rest
            is read when it is claimed again.
        lease_s: How long a claim keeps other monitors off a wallet (a crash frees it then).
    """

    poll_s: float = 5.0
    batch_size: int = 200
    concurrency: int = 8
    page_limit: int = _PAGE_LIMIT_MAX
    pages_per_wallet_max: int = 50
    lease_s: float = 120.0


class WalletPoll(msgspec.Struct, frozen=True, kw_only=True):
    """One wallet's poll: pages credited, deposits credited, whether it reached the end."""

    pages: int
    credited: int
    complete: bool


class PassSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One pass: wallets polled, pages credited, deposits credited, wallets whose read failed."""

    wallets: int = 0
    pages: int = 0
    credited: int = 0
    failed: int = 0


class DepositMonitor:
    """Credits incoming USDC payments to users; runs in the background until stopped.

    Args:
        pool: The database.
        network: Horizon (``list_payments``).
        usdc_issuer: The only issuer whose ``USDC`` is credited.
        settings: Polling knobs.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        network: WalletNetwork,
        *,
        usdc_issuer: str,
        settings: MonitorSettings | None = None,
    ) -> None:
        self._pool = pool
        self._network = network
        self._usdc_issuer = usdc_issuer
        self._settings = settings or MonitorSettings()
        if not 1 <= self._settings.page_limit <= _PAGE_LIMIT_MAX:
            raise ValueError(f"page_limit must be 1..{_PAGE_LIMIT_MAX}")
        self._reads = asyncio.Semaphore(self._settings.concurrency)
        self._loop = BackgroundLoop("deposit-monitor", self._pass, self._settings.poll_s)

    def start(self) -> None:
        """Start the background loop (once)."""
        self._loop.start()

    def wake(self) -> None:
        """Run a pass now instead of at the end of the interval."""
        self._loop.wake()

    async def stop(self) -> None:
        """Stop the loop; an interrupted page is read again by the next pass."""
        await self._loop.stop()

    async def run_once(self) -> PassSummary:
        """One pass over every active wallet not polled since the pass began."""
        async with self._pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            await queries.open_missing_cursors(conn)
            began = await queries.database_now(conn)
        summary = PassSummary()
        while True:
            async with self._pool.acquire() as proxy:
                batch = await queries.claim_wallets(
                    cast(asyncpg.Connection, proxy),
                    polled_before=began,
                    limit=self._settings.batch_size,
                    lease_s=self._settings.lease_s,
                )
            if not batch:
                return summary
            # A task group, so that anything escaping one poll (cancellation at stop) cancels
            # the others too instead of leaving them running unobserved.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._poll_or_none(wallet)) for wallet in batch]
            polls = [task.result() for task in tasks]
            await self._release(batch, polls)
            summary = _add(summary, polls)

    async def poll_wallet(self, wallet: WalletScan) -> WalletPoll:
        """Read and credit the wallet's payments after its cursor, page by page.

        Each page is read with no connection held, then credited in its own transaction.
        When another monitor moved the cursor meanwhile the page is dropped and reading goes
        on from the stored cursor, so the two never credit the same page.
        """
        cursor = wallet.paging_token
        pages = credited = 0
        for _ in range(self._settings.pages_per_wallet_max):
            page = await self._read(wallet.public_key, cursor)
            if not page.records:
                return WalletPoll(pages=pages, credited=credited, complete=True)
            outcome = await self._credit(wallet, page, read_from=cursor)
            cursor = outcome.cursor
            if outcome.stale:
                continue
            pages += 1
            credited += len(outcome.credited)
            if len(page.records) < self._settings.page_limit:
                return WalletPoll(pages=pages, credited=credited, complete=True)
        return WalletPoll(pages=pages, credited=credited, complete=False)

    async def _credit(
        self, wallet: WalletScan, page: PaymentPage, *, read_from: str | None
    ) -> PageOutcome:
        async def work(conn: asyncpg.Connection) -> PageOutcome:
            return await credit_page(
                conn, wallet, page, read_from=read_from, usdc_issuer=self._usdc_issuer
            )

        # Retried as a whole on a race (TransferRaced, deadlock): it touches only the database.
        return await run_in_transaction(self._pool, work)

    async def _read(self, address: str, cursor: str | None) -> PaymentPage:
        async with self._reads:
            return await self._network.list_payments(
                address, cursor=cursor, order="asc", limit=self._settings.page_limit
            )

    async def _poll_or_none(self, wallet: WalletScan) -> WalletPoll | None:
        """Poll one wallet; ``None`` when it failed (logged; the next pass retries it)."""
        try:
            return await self.poll_wallet(wallet)
        except Exception:
            # Horizon down or a bug on one wallet must not stop the others.
            _log.exception("deposit monitor: wallet %s failed", wallet.wallet_id)
            return None

    async def _release(
        self, batch: Sequence[WalletScan], polls: Sequence[WalletPoll | None]
    ) -> None:
        keys = [(wallet.marketplace_id, wallet.wallet_id) for wallet in batch]
        states: list[PollState] = [
            "failed" if poll is None else "done" if poll.complete else "more" for poll in polls
        ]
        async with self._pool.acquire() as proxy:
            await queries.release_wallets(
                cast(asyncpg.Connection, proxy), keys, states, retry_s=self._settings.poll_s
            )

    async def _pass(self) -> bool:
        summary = await self.run_once()
        if summary.credited:
            _log.info("deposit monitor: %d deposits credited", summary.credited)
        return False  # the next pass waits for the interval or a wake-up


def _add(summary: PassSummary, polls: Sequence[WalletPoll | None]) -> PassSummary:
    done = [poll for poll in polls if poll is not None]
    return PassSummary(
        wallets=summary.wallets + len(polls),
        pages=summary.pages + sum(poll.pages for poll in done),
        credited=summary.credited + sum(poll.credited for poll in done),
        failed=summary.failed + len(polls) - len(done),
    )
