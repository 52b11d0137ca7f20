"""What an order shows of the operation it is retrying (api.md 4, Operation.last_error).

A running operation that backs off shows the transient error it retries after: its code
(``PROVIDER_UNAVAILABLE`` when the error has none) and a message that names the cause, with
secrets redacted and emails masked. The real worker records the error; a fake escrow step
raises or asks for the retry.
"""

from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from flows.operations import StepOutcome, StepRetry, StepRun
from flows.order_escrow import start_escrow_create
from flows.orders import get_order, reserve_order
from providers.errors import ProviderUnavailable
from tests.db.test_orders_support import ACTOR, FakeChain, make_deal, make_shop

pytestmark = pytest.mark.db

# A provider echoing a credential and an address back in its error text.
LEAKY = ProviderUnavailable(
    "gateway said: Bearer tw_live_abc123 refused for ops@example.com",
    provider="trustless_work",
    status_code=503,
    reason="server",
)


@dataclass
class TroubledChain(FakeChain):
    """The fake chain, whose escrow step retries (or raises) while ``trouble`` is set."""

    trouble: StepRetry | Exception | None = None

    async def _step(self, run: StepRun) -> StepOutcome:
        if isinstance(self.trouble, Exception):
            raise self.trouble
        if self.trouble is not None:
            return self.trouble
        return await super()._step(run)


@pytest.mark.parametrize(
    ("trouble", "code", "message"),
    [
        pytest.param(
            StepRetry(error={"error": "SourceAccountBusy"}, delay_s=2.0),
            "PROVIDER_UNAVAILABLE",
            "source account busy",
            id="no-code-no-message",
        ),
        pytest.param(
            StepRetry(error={"error": "TransactionDeferred", "reason": "tx_bad_seq"}),
            "PROVIDER_UNAVAILABLE",
            "transaction deferred (tx_bad_seq)",
            id="reason-only",
        ),
        pytest.param(
            LEAKY,
            "PROVIDER_UNAVAILABLE",
            "gateway said: [REDACTED] refused for o***@example.com",
            id="provider-message-redacted",
        ),
    ],
)
async def test_a_retrying_operation_shows_why(
    pool: asyncpg.Pool, trouble: StepRetry | Exception, code: str, message: str
) -> None:
    shop = await make_shop(pool)
    chain = TroubledChain(shop.chain.addresses, trouble=trouble)
    shop.chain = chain
    deal = await make_deal(shop)
    await shop.call(reserve_order, actor=ACTOR, order_id=deal.order_id)
    await shop.call(start_escrow_create, chain.registry(), actor=ACTOR, order_id=deal.order_id)
    assert await shop.settle() == 1
    order = await shop.call(get_order, order_id=deal.order_id)
    assert order.operation is not None
    assert (order.operation.status, order.operation.attempts) == ("RUNNING", 1)
    assert order.operation.last_error is not None
    assert (order.operation.last_error.code, order.operation.last_error.message) == (
        code,
        message,
    )

    # Once the step gets through, the error is gone from the view.
    chain.trouble = None
    await _make_due(pool, order.operation.id)
    assert await shop.settle() == 1
    done: Any = await shop.call(get_order, order_id=deal.order_id)
    assert (done.status, done.operation.status, done.operation.last_error) == (
        "ESCROW_FUNDING",
        "SUCCEEDED",
        None,
    )


async def _make_due(pool: asyncpg.Pool, operation_id: str) -> None:
    """Let the backoff run out."""
    await pool.execute("UPDATE operations SET next_attempt_at = now() WHERE id = $1", operation_id)
