"""The README's "Integrate from Python" example runs as written against a live server.

The block is read from README.md, pointed at the test server (its URL only), and executed with
``KEY``, ``ALICE`` and ``BOB`` set as the curl tour above it leaves them: a funded buyer and a
seller with active wallets.
"""

import contextlib
import io
import re
from pathlib import Path

import pytest
from offerhub_client import OfferHub

from tests.sdk.live import live_server
from tests.sdk.test_story import _deposit, _wallets_ready

pytestmark = [pytest.mark.db, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("## Integrate from Python") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


async def test_the_readme_example_runs(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code = _example()
    assert len(code.strip().splitlines()) <= 12
    with live_server(db_dsn) as server:
        key = server.tenant("readme")
        with OfferHub(server.base_url, key) as hub:
            alice = hub.users.create(external_user_id="alice").id
            bob = hub.users.create(external_user_id="bob").id
            _wallets_ready(hub, alice, bob)
            _deposit(server, hub, alice, "200")
        for name, value in (("KEY", key), ("ALICE", alice), ("BOB", bob)):
            monkeypatch.setenv(name, value)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code.replace("http://127.0.0.1:4000/api/v1", server.base_url), {})
        assert printed.getvalue().strip() == "FUNDED"
