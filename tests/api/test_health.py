"""Liveness and readiness over HTTP, on a real database."""

import asyncpg
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.serve import sandbox_config
from api.settings import Settings
from providers.sandbox.app import Sandbox

SANDBOX_CONFIG = sandbox_config(Sandbox().provider_settings("http://127.0.0.1:4001"))


async def test_health_answers_without_checking_dependencies(db_dsn: str) -> None:
    app = create_app(Settings(), db_dsn, public_config=SANDBOX_CONFIG)
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["timestamp"].endswith("Z")


async def test_readiness_reports_database_and_schema_up(db_dsn: str) -> None:
    app = create_app(Settings(), db_dsn, public_config=SANDBOX_CONFIG)
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/health/ready")
        alias = await client.get("/api/v1/health/detailed")
    assert response.status_code == 200
    assert alias.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "up"
    assert checks["schema"] == {"status": "up", "required": True, "latency_ms": None, "error": None}


async def test_readiness_is_503_on_a_schema_this_build_does_not_know(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    await conn.execute("UPDATE offerhub_schema SET version = 'other'")
    await conn.close()
    app = create_app(Settings(), db_dsn, public_config=SANDBOX_CONFIG)
    async with AsyncTestClient(app) as client:
        response = await client.get("/api/v1/health/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert response.json()["checks"]["schema"]["status"] == "down"
