"""Property-based fuzzing of every endpoint from the OpenAPI document the app serves.

schemathesis reads ``/api/v1/openapi.json`` from the app served on the sandbox (real HTTP, real
PostgreSQL, one seeded marketplace) and, per operation, generates requests that follow the
document (positive) and requests that break it (negative). Half the time, ids in the path,
query and body are replaced by ids that exist (users, orders in several states, a dispute, a
top-up, a withdrawal, ledger accounts, ...), so requests reach past the 404s into the flows.
Every request carries a valid key with every scope (the master key where a route needs it).

Every answer must be no 5xx, a documented status code, the documented content type, a body
matching the documented schema, and documented headers. Shrinking is off to keep the run
bounded; schemathesis's report of a failure carries the request to replay it.
"""

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import route_path
from api.paths import API_PREFIX
from api.routes import ROUTES
from tests.fuzz.support import MASTER_KEY, Seeded

pytestmark = [
    pytest.mark.db,
    pytest.mark.slow,
    # schemathesis's negative generation draws from `random` inside its strategies.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Examples per operation and generation mode: ~80 operations stay within about two minutes.
MAX_EXAMPLES = 20
# The event stream never ends (its own tests read it frame by frame).
SKIPPED = {("GET", f"{API_PREFIX}/events")}
# Request fields (path, query or body) that may name an id of the seeded marketplace.
ID_FIELDS = {
    "buyer_id": "user_id",
    "seller_id": "user_id",
    "user_id": "user_id",
    "order_id": "order_id",
    "account_id": "account_id",
    "marketplace_id": "marketplace_id",
}

# Amounts the seeded buyer can afford (generated ones are mostly "0" or out of the limits).
AMOUNTS = ["1", "2.50", "10"]


def documented_routes() -> Iterator[tuple[str, str]]:
    """``(METHOD, path)`` of every route the document describes, aliases included."""
    for handler in ROUTES:
        if not handler.include_in_schema:
            continue
        for path in sorted(handler.paths):
            for method in sorted(handler.http_methods):
                yield method, API_PREFIX + route_path(path)


ROUTE_LIST = sorted(set(documented_routes()) - SKIPPED)


@pytest.fixture(scope="module")
async def served_schema(seeded: Seeded) -> Any:
    """The OpenAPI document as the running app serves it, loaded by schemathesis."""
    url = f"{seeded.base_url}{API_PREFIX}/openapi.json"
    return await asyncio.to_thread(schemathesis.openapi.from_url, url)


async def test_the_document_describes_every_route(served_schema: Any) -> None:
    served = set()
    for result in served_schema.get_all_operations():
        operation = result.ok()
        served.add((operation.method.upper(), operation.path))
    assert served == set(ROUTE_LIST) | SKIPPED


def _fill_known_ids(case: Any, seeded: Seeded, draw: Any) -> None:
    """Replace generated ids by existing ones where the request names one (half the time)."""
    if not draw(st.booleans()):
        return
    for container in (case.path_parameters, case.query, case.body):
        if not isinstance(container, dict):
            continue
        for name in list(container):
            kind = ID_FIELDS.get(name, name)
            known = AMOUNTS if name == "amount" else seeded.ids.get(kind)
            if known:
                container[name] = draw(st.sampled_from(known))


def _keys(path: str, seeded: Seeded) -> list[str]:
    """The master key for marketplaces; either key for API keys and ``/auth/me``."""
    if path.startswith(f"{API_PREFIX}/marketplaces"):
        return [MASTER_KEY]
    if path.startswith((f"{API_PREFIX}/auth/", f"{API_PREFIX}/me")):
        return [MASTER_KEY, seeded.key]
    return [seeded.key]


def _fuzz(operation: Any, seeded: Seeded) -> None:
    """Run the generated requests of one operation; raise on the first failed check."""
    session = requests.Session()
    modes = [GenerationMode.POSITIVE]
    if operation.path_parameters or operation.query or operation.headers or operation.body:
        modes.append(GenerationMode.NEGATIVE)
    keys = _keys(operation.path, seeded)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES * len(modes),
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(data=st.data())
    def run(data: st.DataObject) -> None:
        mode = data.draw(st.sampled_from(modes), label="mode")
        case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
        _fill_known_ids(case, seeded, data.draw)
        if mode is GenerationMode.POSITIVE and data.draw(st.integers(0, 9), label="key") != 5:
            # Mostly a fresh key: generated keys repeat ("0"), and a reused key answers 409.
            case.headers = {**(case.headers or {}), "Idempotency-Key": str(uuid.uuid4())}
        key = data.draw(st.sampled_from(keys), label="key")
        case.call_and_validate(
            session=session, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
        )

    try:
        run()
    finally:
        session.close()


@pytest.mark.parametrize(("method", "path"), ROUTE_LIST, ids=[f"{m} {p}" for m, p in ROUTE_LIST])
async def test_fuzzed_requests_get_documented_answers_and_no_5xx(
    served_schema: Any, seeded: Seeded, method: str, path: str
) -> None:
    operation = served_schema[path][method]
    await asyncio.to_thread(_fuzz, operation, seeded)
