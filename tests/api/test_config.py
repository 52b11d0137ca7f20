"""GET /api/v1/config in sandbox mode: absolute sandbox URLs that really serve the providers."""

import httpx
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.serve import sandbox_config
from api.settings import Settings
from providers.sandbox.app import Sandbox


async def test_config_reports_the_sandbox_and_its_urls_serve_each_provider(db_dsn: str) -> None:
    sandbox = Sandbox()
    providers = sandbox.provider_settings("http://sandbox.test")
    app = create_app(Settings(), db_dsn, public_config=sandbox_config(providers))
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/config")
    assert response.status_code == 200
    body = response.json()
    assert body["network"] == "sandbox"
    assert body["currencies"] == ["USD"]
    assert body["asset"] == {"code": "USDC", "issuer": sandbox.chain.issuer.public_key}
    urls = body["providers"]["sandbox"]
    assert urls == {
        "horizon_url": "http://sandbox.test/_sandbox/horizon",
        "trustless_work_url": "http://sandbox.test/_sandbox/trustless-work",
        "airtm_url": "http://sandbox.test/_sandbox/airtm",
        "control_url": "http://sandbox.test/_sandbox/control",
    }
    transport = httpx.ASGITransport(app=sandbox.asgi_app())
    async with httpx.AsyncClient(transport=transport) as http:
        issuer = await http.get(f"{urls['horizon_url']}/accounts/{body['asset']['issuer']}")
        account = await http.get(f"{urls['control_url']}/accounts/{body['asset']['issuer']}")
    assert issuer.status_code == 200
    assert issuer.json()["account_id"] == body["asset"]["issuer"]
    assert account.json()["exists"] is True
