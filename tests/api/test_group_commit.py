"""Group commit over HTTP: concurrent postings of one marketplace share commits, exactly.

Many concurrent adjustments on one user (every one of them locks the same user and counter
accounts) must land as if they had run one by one: a refused debit moves nothing, the final
balance is the sum of the accepted ones, each accepted one has its transfer, event and audit
entry, retries replay, and there are fewer database transactions than requests.
"""

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from common.money import format_amount, parse_amount
from tests.api.support import SandboxApi, running_api_on_sandbox, settings_for_tests
from tests.api.test_users import USERS

pytestmark = pytest.mark.db


@pytest.fixture
async def sandbox_api(db_dsn: str) -> AsyncIterator[SandboxApi]:
    """The app on the sandbox with group commit on (its default)."""
    settings = settings_for_tests(group_commit_max=16)
    async with running_api_on_sandbox(db_dsn, settings=settings) as running:
        yield running


async def test_concurrent_postings_on_one_account_land_exactly_once_each(
    sandbox_api: SandboxApi,
) -> None:
    api = sandbox_api
    marketplace_id, key = await api.tenant()
    created = await api.post(USERS, key, {"external_user_id": "hot-user"})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    path = f"{USERS}/{user_id}/balance/adjustments"
    rng = random.Random(7)
    moves = [
        ("CREDIT" if rng.random() < 0.6 else "DEBIT", rng.randint(1, 500) * 100) for _ in range(60)
    ]
    keys = [f"move-{index}" for index in range(len(moves))]

    async def post(index: int) -> tuple[int, str]:
        direction, minor = moves[index]
        body = {
            "direction": direction,
            "amount": format_amount(minor),
            "reason": "group commit test",
            "counter_account": "external:stellar",
        }
        answer = await api.post(path, key, body, idempotency_key=keys[index])
        return answer.status_code, answer.text

    answers = await asyncio.gather(*(post(index) for index in range(len(moves))))
    accepted = [index for index, (status, _) in enumerate(answers) if status == 201]
    refused = [index for index, (status, _) in enumerate(answers) if status != 201]
    for index in refused:
        status, text = answers[index]
        assert status == 422, text
        assert "INSUFFICIENT_FUNDS" in text
        assert moves[index][0] == "DEBIT"
    signed = [minor if direction == "CREDIT" else -minor for direction, minor in moves]
    expected = sum(signed[index] for index in accepted)

    balance = await api.get(f"{USERS}/{user_id}/balance", key)
    assert balance.status_code == 200, balance.text
    assert parse_amount(balance.json()["available"]) == expected

    # Retries replay and move nothing.
    replays = await asyncio.gather(*(post(index) for index in range(len(moves))))
    assert [status for status, _ in replays] == [status for status, _ in answers]
    again = await api.get(f"{USERS}/{user_id}/balance", key)
    assert again.json()["available"] == balance.json()["available"]

    conn = await asyncpg.connect(api.dsn)
    try:
        transfers = await conn.fetchval(
            "SELECT count(*) FROM ledger_transfers WHERE marketplace_id = $1 AND code ="
            " 'adjustment'",
            marketplace_id,
        )
        events = await conn.fetch(
            "SELECT writer_xid FROM events WHERE marketplace_id = $1 AND type LIKE 'balance.%'",
            marketplace_id,
        )
        audits = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE marketplace_id = $1 AND action ="
            " 'BALANCE_ADJUSTED'",
            marketplace_id,
        )
    finally:
        await conn.close()
    assert transfers == len(accepted)
    assert len(events) == len(accepted)
    assert audits == len(accepted)
    # The accepted postings shared transactions: fewer commits than requests.
    assert len({row["writer_xid"] for row in events}) < len(accepted)
