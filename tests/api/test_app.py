"""The app as a whole: OpenAPI, settings, and the refusal to start with an unguarded route."""

import pytest
from litestar import get, post
from litestar.params import JSONBody

from api.app import create_app
from api.auth import Caller, requires
from api.schemas import RequestStruct
from api.settings import SettingsError, load_settings
from flows.transitions import Actor
from tests.api.support import PUBLIC_CONFIG, Api, settings_for_tests


class Loose(RequestStruct, frozen=True):
    """A body whose every field is optional."""

    note: str | None = None


@pytest.mark.db
async def test_openapi_document_and_docs_page_are_served(api: Api) -> None:
    document = await api.client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.1")
    schemas = spec["components"]["schemas"]
    assert {"Marketplace", "MarketplaceCreate", "ApiKeyCreate", "CreatedApiKey", "Me"} <= set(
        schemas
    )
    assert schemas["MarketplaceCreate"]["required"] == ["name"]
    create = spec["paths"]["/api/v1/marketplaces"]["post"]
    assert "requestBody" in create
    listing = spec["paths"]["/api/v1/marketplaces"]["get"]
    assert {parameter["name"] for parameter in listing["parameters"]} == {"limit", "cursor"}
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    amount = schemas["EffectCreate"]["properties"]["amount"]
    assert "pattern" in str(amount)
    docs = await api.client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


def test_an_unguarded_route_refuses_to_start() -> None:
    @get("/open", sync_to_thread=False)
    def unguarded() -> None:
        return None

    with pytest.raises(RuntimeError, match="needs exactly one guard"):
        create_app(
            settings_for_tests(),
            "postgresql://unused",
            public_config=PUBLIC_CONFIG,
            extra_routes=[unguarded],
        )


def test_a_required_body_without_required_fields_refuses_to_start() -> None:
    @post("/loose", guards=[requires("write")])
    async def loose(data: JSONBody[Loose]) -> None:
        return None

    with pytest.raises(RuntimeError, match="JSONBody"):
        create_app(
            settings_for_tests(),
            "postgresql://unused",
            public_config=PUBLIC_CONFIG,
            extra_routes=[loose],
        )


def test_the_caller_names_the_actor_of_domain_changes() -> None:
    key = Caller(
        marketplace_id="mkt_1", key_id="key_1", scopes=("read",), is_master=False, request_id="r"
    )
    master = Caller(marketplace_id=None, key_id=None, scopes=(), is_master=True, request_id="m")
    assert key.actor == Actor(type="API_KEY", id="key_1", request_id="r")
    assert master.actor == Actor(type="MASTER_KEY", id=None, request_id="m")
    assert (key.namespace, master.namespace) == ("mkt_1", "master")
    assert key.tenant == "mkt_1"


def test_settings_read_the_api_variables() -> None:
    settings = load_settings(
        {
            "OFFERHUB_MASTER_KEY": "k" * 32,
            "OFFERHUB_NETWORK": "mainnet",
            "OFFERHUB_RATE_LIMIT_PER_S": "0",
            "OFFERHUB_IDEMPOTENCY_RETENTION_HOURS": "24",
        }
    )
    assert settings.master_key == "k" * 32
    assert settings.key_env == "live"
    assert settings.rate_limit_per_s == 0
    assert settings.idempotency_retention_hours == 24
    assert load_settings({}).key_env == "test"
    with pytest.raises(SettingsError, match="OFFERHUB_MASTER_KEY"):
        load_settings({"OFFERHUB_MASTER_KEY": "short"})
    with pytest.raises(SettingsError, match="OFFERHUB_NETWORK"):
        load_settings({"OFFERHUB_NETWORK": "moon"})
