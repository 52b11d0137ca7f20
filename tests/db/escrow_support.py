"""Shared set-up of the escrow-operation tests (no tests here): parties, starts and snapshots."""

from dataclasses import dataclass
from typing import Any

import asyncpg

from common.ids import new_id
from flows.escrow_steps import ESCROW_STEPS
from flows.operation_steps import STEP_REGISTRY
from flows.operations import start_operation
from flows.queries.operations import OperationKind
from flows.queries.wallets import Wallet
from tests.db.sandbox_world import USDC, SandboxWorld, make_world

AMOUNT = 100 * USDC
REGISTRY = {**STEP_REGISTRY, **ESCROW_STEPS}


@dataclass
class Deal:
    """A world with an activated, funded buyer and an activated seller, and one order id."""

    world: SandboxWorld
    buyer: Wallet
    seller: Wallet
    order_id: str
    contract_id: str | None = None

    @property
    def parties(self) -> dict[str, str]:
        return {"buyer_wallet_id": self.buyer.id, "seller_wallet_id": self.seller.id}

    async def start(self, kind: OperationKind, **payload: Any) -> str:
        """Start an operation of ``kind`` on the order; returns its id."""
        document = {"order_id": self.order_id, "escrow_id": "esc_x", **self.parties, **payload}
        if self.contract_id is not None:
            document.setdefault("contract_id", self.contract_id)
        async with self.world.pool.acquire() as conn, conn.transaction():
            operation = await start_operation(
                conn,
                self.world.registry,
                marketplace_id=self.world.marketplace_id,
                kind=kind,
                resource_type="order",
                resource_id=self.order_id,
                payload=document,
            )
        return operation.id

    async def deploy_payload(self, milestones: int = 1) -> dict[str, Any]:
        return {
            "title": "Logo",
            "description": "A logo in three colours",
            "amount_minor": AMOUNT,
            "platform_fee_bps": 500,
            "milestones": [f"part {i}" for i in range(milestones)],
        }

    async def run(self, kind: OperationKind, **payload: Any) -> dict[str, Any]:
        """Start and settle an operation; returns its ended row."""
        operation_id = await self.start(kind, **payload)
        status = await self.world.run_until_settled(operation_id)
        row = await self.world.operation(operation_id)
        assert status == "SUCCEEDED", row["last_error"]
        return row

    async def deploy(self, milestones: int = 1) -> str:
        row = await self.run(OperationKind.ESCROW_CREATE, **await self.deploy_payload(milestones))
        self.contract_id = str(row["payload"]["contract_id"])
        return self.contract_id

    async def fund(self) -> None:
        await self.run(OperationKind.ESCROW_FUND, amount_minor=AMOUNT)

    def snapshot(self) -> dict[str, Any]:
        """The chain facts the escrow operations change, comparable across runs."""
        world, chain = self.world, self.world.sandbox.chain
        settings = world.settings
        escrow = world.sandbox.trustless_work.escrows.get(self.contract_id or "")
        addresses = {
            "buyer": self.buyer.public_key,
            "seller": self.seller.public_key,
            "platform": world.sandbox.platform.public_key,
            "trustless_work": settings.trustless_work_fee_address,
        }
        applied = {
            name: sum(
                1
                for tx in chain.transactions.values()
                if tx.source_account == address and tx.successful
            )
            for name, address in addresses.items()
        }
        return {
            "usdc": {name: world.usdc(address) for name, address in addresses.items()},
            "contract_usdc": world.usdc(self.contract_id) if self.contract_id else None,
            "flags": None if escrow is None else msgspec_flags(escrow),
            "applied_txs": applied,
        }


def msgspec_flags(escrow: Any) -> dict[str, Any]:
    """The escrow's flags and milestone states as plain values."""
    return {
        "flags": str(escrow.flags),
        "milestones": [(m.status, m.approved) for m in escrow.milestones],
    }


async def make_deal(pool: asyncpg.Pool, *, buyer_usdc: int = AMOUNT) -> Deal:
    """A world with the escrow steps registered and two activated parties."""
    world = await make_world(pool)
    world.registry = REGISTRY
    buyer = await world.activated_wallet(usdc=buyer_usdc)
    seller = await world.activated_wallet()
    return Deal(world=world, buyer=buyer, seller=seller, order_id=new_id("ord_"))
