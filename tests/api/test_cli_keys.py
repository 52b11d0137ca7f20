"""``offerhub keys ...`` and the first-start bootstrap, on a real database."""

import asyncio

import pytest

from api.api_keys import parse_key
from api.bootstrap import bootstrap_marketplace
from api.cli import main
from tests.api.support import running_api

pytestmark = pytest.mark.db


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_keys_create_list_revoke(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    status, out, _ = run(
        capsys, "keys", "create", "--marketplace", "Shop", "--scopes", "read,write"
    )
    assert status == 0
    line = next(line for line in out.splitlines() if line.startswith("API key: "))
    parsed = parse_key(line.removeprefix("API key: "))
    assert parsed is not None
    assert parsed.env == "test"
    status, again, _ = run(capsys, "keys", "create", "--marketplace", "Shop", "--scopes", "*")
    marketplace_line = out.splitlines()[0]
    assert again.splitlines()[0] == marketplace_line  # the marketplace is reused by name
    status, listing, _ = run(capsys, "keys", "list")
    assert status == 0
    assert parsed.key_id in listing
    assert "read,write " in listing
    assert parsed.secret not in listing
    status, revoked, _ = run(capsys, "keys", "revoke", parsed.key_id)
    assert (status, revoked.strip()) == (0, f"revoked {parsed.key_id}")
    status, listing, _ = run(capsys, "keys", "list")
    assert "REVOKED" in listing
    status, _, err = run(capsys, "keys", "revoke", "key_" + "0" * 32)
    assert status == 1
    assert "no API key" in err
    status, _, err = run(capsys, "keys", "create", "--marketplace", "Shop", "--scopes", "root")
    assert status == 2
    assert "--scopes" in err


async def test_first_start_bootstraps_one_marketplace_with_an_all_scopes_key(db_dsn: str) -> None:
    created = await bootstrap_marketplace(db_dsn, "test")
    assert created is not None
    marketplace, issued = created
    assert issued.row.scopes == ["read", "write", "support", "admin"]
    assert issued.key.startswith("ohk_test_key_")
    assert await bootstrap_marketplace(db_dsn, "test") is None
    async with running_api(db_dsn) as api:
        me = await api.get("/api/v1/auth/me", issued.key)
    assert me.json()["marketplace"]["id"] == marketplace.id


async def test_concurrent_first_starts_create_one_marketplace(db_dsn: str) -> None:
    results = await asyncio.gather(*(bootstrap_marketplace(db_dsn, "test") for _ in range(4)))
    assert sum(result is not None for result in results) == 1
