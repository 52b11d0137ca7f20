"""Seconds to reconcile 10,000 wallets and 10,000 escrows against the sandbox.

How the world is seeded (fast, and not what is measured):

- the database (``DATABASE_URL``, else a throwaway local server) gets one marketplace, N users
  with active wallets and N orders with FUNDED escrows, written with COPY; the ledger is real:
  user and escrow accounts opened, then one batched ``create_transfers`` per 1,000 postings
  (``external:stellar -> user:<usr>`` and ``external:stellar -> escrow:<ord>``: a bench-only
  shortcut that gives each account a posted balance without running N escrow flows);
- the sandbox chain gets the same state written into its memory: an account with a USDC
  trustline per wallet and a contract balance plus a Trustless Work escrow record per escrow.

What is measured: one full run (``reconcile_once``, all four sources): the ledger snapshot, one
``GET /accounts/{G}`` per wallet and one escrow read per 20 contracts through the real Horizon
and Trustless Work clients over HTTP (in-process ASGI transport, at most 16 in flight), the
comparison, and storing every item. The last line printed is one JSON object.
"""

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
from stellar_sdk import StrKey

# Run as a script, the repository root must be importable (as in bench/ledger.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _postgres import bench_database

from common.ids import new_id
from ledger import Transfer, create_transfers, migrate, open_account, system_account
from ledger.accounts import escrow_account, user_account
from ledger.db import create_pool
from providers.sandbox.app import Sandbox
from providers.sandbox.chain_state import AccountEntry, Trustline
from providers.sandbox.trustless_work_escrows import EscrowRecord, MilestoneRecord
from providers.stellar.horizon import HorizonClient
from providers.trustless_work.client import TrustlessWorkClient
from providers.trustless_work.wire import WireRoles
from reconcile import ChainReader, reconcile_once

USDC: Final = 10_000_000
_BATCH: Final = 1_000


def _address(rng: random.Random) -> str:
    return StrKey.encode_ed25519_public_key(rng.randbytes(32))


def _contract(rng: random.Random) -> str:
    return StrKey.encode_contract(rng.randbytes(32))


async def _post(conn: asyncpg.Connection, market: str, pairs: list[tuple[str, str, int]]) -> None:
    """Batched SINGLE postings (debit, credit, amount)."""
    for start in range(0, len(pairs), _BATCH):
        batch = [
            Transfer(
                id=new_id("trf_"),
                marketplace_id=market,
                code="bench_seed",
                debit_account_id=debit,
                credit_account_id=credit,
                amount=amount,
                asset="USD",
            )
            for debit, credit, amount in pairs[start : start + _BATCH]
        ]
        async with conn.transaction():
            await create_transfers(conn, batch)


async def _open_accounts(conn: asyncpg.Connection, market: str, specs: list[Any]) -> list[str]:
    records = [
        (
            market,
            new_id("acc_"),
            s.code,
            "USD",
            s.type.value,
            s.normal_side.value,
            True,
            s.user_id,
            s.order_id,
        )
        for s in specs
    ]
    columns = (
        "marketplace_id",
        "id",
        "code",
        "asset",
        "type",
        "normal_side",
        "debits_must_not_exceed_credits",
        "user_id",
        "order_id",
    )
    await conn.copy_records_to_table("ledger_accounts", records=records, columns=columns)
    return [record[1] for record in records]


async def _seed_database(
    pool: asyncpg.Pool,
    market: str,
    wallets: list[tuple[str, str, int]],
    escrows: list[tuple[str, str, str, str, str, int]],
) -> None:
    """Wallets are (user, key, usdc); escrows (order, escrow, contract, buyer, seller, usdc)."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO marketplaces (id, name, platform_fee_bps) VALUES ($1, $1, 500)", market
        )
        await conn.copy_records_to_table(
            "users",
            records=[(market, u, u) for u, _, _ in wallets],
            columns=("marketplace_id", "id", "external_user_id"),
        )
        await conn.copy_records_to_table(
            "wallets",
            records=[
                (market, new_id("wal_"), u, key, "v1:bench", 1, True, True, True)
                for u, key, _ in wallets
            ],
            columns=(
                "marketplace_id",
                "id",
                "user_id",
                "public_key",
                "sealed_secret",
                "key_version",
                "is_active",
                "funded",
                "trustline_ready",
            ),
        )
        await conn.copy_records_to_table(
            "orders",
            records=[
                (market, o, b, s, amount, "IN_PROGRESS", "bench")
                for o, _, _, b, s, amount in escrows
            ],
            columns=(
                "marketplace_id",
                "id",
                "buyer_id",
                "seller_id",
                "amount_minor",
                "status",
                "title",
            ),
        )
        await conn.copy_records_to_table(
            "escrows",
            records=[(market, e, o, "FUNDED", amount, c, 500) for o, e, c, _, _, amount in escrows],
            columns=(
                "marketplace_id",
                "id",
                "order_id",
                "status",
                "amount_minor",
                "contract_id",
                "platform_fee_bps",
            ),
        )
        external = await open_account(conn, market, "USD", system_account("external:stellar"))
        users = await _open_accounts(conn, market, [user_account(u) for u, _, _ in wallets])
        held = await _open_accounts(conn, market, [escrow_account(o) for o, *_ in escrows])
        pairs = [(external.id, a, w[2]) for a, w in zip(users, wallets, strict=True)]
        pairs += [(external.id, a, e[5]) for a, e in zip(held, escrows, strict=True)]
        await _post(conn, market, pairs)


def _seed_chain(
    sandbox: Sandbox,
    wallets: list[tuple[str, str, int]],
    escrows: list[tuple[str, str, str, str, str, int]],
) -> None:
    chain, platform = sandbox.chain, sandbox.platform.public_key
    for _, key, usdc in wallets:
        chain.state.accounts[key] = AccountEntry(
            account_id=key,
            sequence=0,
            xlm=3 * USDC,
            subentries=1,
            trustlines={chain.usdc_key: Trustline(balance=usdc)},
        )
    buyer_of = {user: key for user, key, _ in wallets}
    for order, _, contract, buyer, seller, amount in escrows:
        chain.state.contracts[contract] = amount
        roles = WireRoles(
            approver=buyer_of[buyer],
            service_provider=buyer_of[seller],
            platform_address=platform,
            release_signer=buyer_of[buyer],
            dispute_resolver=platform,
            receiver=buyer_of[seller],
        )
        sandbox.trustless_work.escrows[contract] = EscrowRecord(
            contract_id=contract,
            escrow_type="single-release",
            signer=platform,
            engagement_id=order,
            title="bench",
            description="bench",
            roles=roles,
            amount=amount,
            platform_fee_bps=500,
            milestones=[MilestoneRecord(description="all")],
            trustline_address=chain.issuer.public_key,
        )


def _world(
    count: int,
) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str, str, str, int]]]:
    rng = random.Random(7)
    wallets = [(new_id("usr_"), _address(rng), rng.randint(1, 10_000) * USDC) for _ in range(count)]
    escrows = []
    for index in range(count):
        buyer, seller = wallets[index][0], wallets[(index + 1) % count][0]
        escrows.append(
            (
                new_id("ord_"),
                new_id("esc_"),
                _contract(rng),
                buyer,
                seller,
                rng.randint(1, 1_000) * USDC,
            )
        )
    return wallets, escrows


async def _measure(dsn: str, count: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(dsn, min_size=2, max_size=8)
    sandbox = Sandbox(seed=11, start_s=1_800_000_000)
    settings = sandbox.provider_settings("http://sandbox.bench")
    market = new_id("mkt_")
    wallets, escrows = _world(count)
    try:
        await _seed_database(pool, market, wallets, escrows)
        _seed_chain(sandbox, wallets, escrows)
        transport = httpx.ASGITransport(app=sandbox.asgi_app())
        async with (
            httpx.AsyncClient(transport=transport) as http,
            httpx.AsyncClient(transport=transport, base_url=settings.horizon_url) as horizon,
        ):
            reader = ChainReader(
                HorizonClient(horizon, usdc_issuer=settings.usdc_issuer),
                TrustlessWorkClient(
                    http, settings.trustless_work, api_key=settings.trustless_work_api_key
                ),
                platform_address=sandbox.platform.public_key,
                passphrase=settings.network_passphrase,
                usdc_issuer=settings.usdc_issuer,
            )
            started = time.perf_counter()
            run = await reconcile_once(pool, reader, market)
            seconds = time.perf_counter() - started
    finally:
        await pool.close()
    assert run.status == "COMPLETED", run.error
    return {
        "reconcile_wallets": count,
        "reconcile_escrows": count,
        "reconcile_seconds": round(seconds, 3),
        "reconcile_items": run.items_checked,
        "reconcile_discrepancies": run.discrepancies,
    }


async def run(quick: bool) -> dict[str, Any]:
    """Seed and reconcile 10,000 wallets and escrows (1,000 with ``quick``); the figures."""
    count = 1_000 if quick else 10_000
    with bench_database(durable=False, prefix="offerhub-bench-recon-") as dsn:
        return await _measure(dsn, count)


def main() -> None:
    """Print the figures; the last line is one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 wallets and escrows")
    args = parser.parse_args()
    # One log line per HTTP request would drown the figures.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    print(json.dumps(asyncio.run(run(args.quick))))


if __name__ == "__main__":
    main()
