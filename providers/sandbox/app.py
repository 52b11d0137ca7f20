"""The whole sandbox: one shared state and one ASGI app mounting every simulated service.

``Sandbox`` owns the clock, the chain, the simulated Trustless Work and Airtm, the fault rules,
a seeded RNG and the credentials. ``Sandbox.asgi_app()`` serves (providers.md 5.7)::

    /_sandbox/horizon/...         Horizon-compatible
    /_sandbox/trustless-work/...  Trustless Work-compatible (x-api-key)
    /_sandbox/airtm/...           Airtm-compatible (HTTP Basic)
    /_sandbox/control/...         test controls (no auth; loopback only)

``provider_settings(base_url)`` returns what the real clients need to talk to it. Tests reach
the app in-process through ``httpx.ASGITransport``; ``offerhub serve`` mounts it on a port.
"""

import asyncio
import base64
import contextlib
import random
from typing import Final, cast

import httpx
import msgspec

from providers.airtm.client import AirtmSettings
from providers.sandbox.airtm_app import AirtmSandboxSettings, create_airtm_app
from providers.sandbox.airtm_records import AirtmStateConfig
from providers.sandbox.airtm_state import AirtmState
from providers.sandbox.airtm_webhooks import AirtmWebhookSender
from providers.sandbox.chain import SandboxChain
from providers.sandbox.clock import SandboxClock
from providers.sandbox.control_app import SandboxControl, create_control_app
from providers.sandbox.faults import FaultRules
from providers.sandbox.horizon_app import HorizonSandboxSettings, create_horizon_app
from providers.sandbox.http_faults import ASGIApp, Receive, Scope, Send
from providers.sandbox.trustless_work_app import (
    TrustlessWorkSandboxSettings,
    create_trustless_work_app,
)
from providers.sandbox.trustless_work_state import TrustlessWorkConfig, TrustlessWorkState
from providers.trustless_work.settings import TrustlessWorkSettings

__all__ = [
    "AIRTM_PREFIX",
    "CONTROL_PREFIX",
    "HORIZON_PREFIX",
    "TRUSTLESS_WORK_PREFIX",
    "Sandbox",
    "SandboxProviderSettings",
]

HORIZON_PREFIX: Final = "/_sandbox/horizon"
TRUSTLESS_WORK_PREFIX: Final = "/_sandbox/trustless-work"
AIRTM_PREFIX: Final = "/_sandbox/airtm"
CONTROL_PREFIX: Final = "/_sandbox/control"


class SandboxProviderSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the real clients need to use the sandbox instead of the real providers."""

    horizon_url: str
    trustless_work: TrustlessWorkSettings
    trustless_work_api_key: str
    airtm: AirtmSettings
    airtm_webhook_secret: str
    network_passphrase: str
    usdc_issuer: str
    usdc_contract_id: str
    trustless_work_fee_address: str
    deployer_contract_id: str
    control_url: str

    def __repr__(self) -> str:
        """Keep the keys out of logs (they are sandbox keys, but the habit matters)."""
        return f"SandboxProviderSettings(horizon_url={self.horizon_url!r}, ...)"


class _Mounts:
    """A path-prefix dispatcher over ASGI apps; it answers lifespan events itself."""

    def __init__(self, mounts: list[tuple[str, ASGIApp]]) -> None:
        self._mounts = mounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "")
        for prefix, app in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                await app(scope, receive, send)
                return
        body = b'{"error":"not found"}'
        start = {"type": "http.response.start", "status": 404}
        start["headers"] = [(b"content-type", b"application/json")]
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        # The mounted apps keep no resources, so startup and shutdown only acknowledge.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class Sandbox:
    """The shared simulated world: chain, Trustless Work, Airtm, faults, clock and keys."""

    def __init__(
        self,
        *,
        seed: int = 0,
        start_s: float | None = None,
        follow_wall_clock: bool = False,
        trustless_work_config: TrustlessWorkConfig | None = None,
        trustless_work_rate_limit: int | None = None,
        airtm_config: AirtmStateConfig | None = None,
        airtm_rate_limit_rps: int | None = None,
        activate_platform: bool = True,
    ) -> None:
        self.clock = SandboxClock(start_s, follow_wall_clock=follow_wall_clock)
        # Not for secrets: the sandbox's keys and ids must repeat run after run.
        self.rng = random.Random(seed)  # noqa: S311
        self.faults = FaultRules()
        self.chain = SandboxChain(self.clock, seed=seed)
        self.trustless_work = TrustlessWorkState(
            self.chain, config=trustless_work_config, seed=seed
        )
        self.airtm = AirtmState(self.clock, airtm_config, seed=seed)
        self.platform = self.chain.new_keypair()
        if activate_platform:
            self.chain.activate(self.platform)
        self.trustless_work_api_key = (
            f"{self.rng.randbytes(8).hex()}.{self.rng.randbytes(16).hex()}"
        )
        self.airtm_api_key = self.rng.randbytes(8).hex()
        self.airtm_api_secret = self.rng.randbytes(16).hex()
        self.airtm_webhook_secret = "whsec_" + base64.b64encode(self.rng.randbytes(24)).decode()
        self._trustless_work_rate_limit = trustless_work_rate_limit
        self._airtm_rate_limit_rps = airtm_rate_limit_rps
        self._app: ASGIApp | None = None
        self._webhooks: AirtmWebhookSender | None = None
        self._webhook_http: httpx.AsyncClient | None = None
        self._pump: asyncio.Task[None] | None = None

    def asgi_app(self) -> ASGIApp:
        """The one ASGI app serving every service under ``/_sandbox`` (built once)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> ASGIApp:
        horizon = create_horizon_app(
            self.chain,
            faults=self.faults,
            settings=HorizonSandboxSettings(path_prefix=HORIZON_PREFIX),
        )
        trustless_work = create_trustless_work_app(
            self.trustless_work,
            faults=self.faults,
            settings=TrustlessWorkSandboxSettings(
                path_prefix=TRUSTLESS_WORK_PREFIX,
                api_key=self.trustless_work_api_key,
                rate_limit=self._trustless_work_rate_limit,
            ),
        )
        airtm = create_airtm_app(
            self.airtm,
            faults=self.faults,
            settings=AirtmSandboxSettings(
                path_prefix=AIRTM_PREFIX,
                api_key=self.airtm_api_key,
                api_secret=self.airtm_api_secret,
                rate_limit_rps=self._airtm_rate_limit_rps,
            ),
        )
        control = SandboxControl(
            chain=self.chain,
            trustless_work=self.trustless_work,
            airtm=self.airtm,
            faults=self.faults,
            after_airtm=self.deliver_webhooks,
        )
        control_app = create_control_app(control, path_prefix=CONTROL_PREFIX)
        return _Mounts(
            [
                (HORIZON_PREFIX, horizon),
                (TRUSTLESS_WORK_PREFIX, trustless_work),
                (AIRTM_PREFIX, airtm),
                (CONTROL_PREFIX, cast(ASGIApp, control_app)),
            ]
        )

    def provider_settings(self, base_url: str = "http://sandbox") -> SandboxProviderSettings:
        """Base URLs (absolute, under ``base_url``), keys and network facts for the clients."""
        root = base_url.rstrip("/")
        return SandboxProviderSettings(
            horizon_url=root + HORIZON_PREFIX,
            trustless_work=TrustlessWorkSettings(base_url=root + TRUSTLESS_WORK_PREFIX),
            trustless_work_api_key=self.trustless_work_api_key,
            airtm=AirtmSettings(
                base_url=root + AIRTM_PREFIX,
                api_key=self.airtm_api_key,
                api_secret=self.airtm_api_secret,
                checkout_url_template=root + CONTROL_PREFIX + "/airtm/checkout/{payin_id}",
            ),
            airtm_webhook_secret=self.airtm_webhook_secret,
            network_passphrase=self.chain.passphrase,
            usdc_issuer=self.chain.issuer.public_key,
            usdc_contract_id=self.trustless_work.token_contract_id,
            trustless_work_fee_address=self.trustless_work.tw_fee_address,
            deployer_contract_id=self.trustless_work.deployer_id,
            control_url=root + CONTROL_PREFIX,
        )

    async def deliver_webhooks(self) -> None:
        """Deliver due Airtm webhooks now, if a pump was started (else they wait in the outbox)."""
        if self._webhooks is not None and self._webhook_http is not None:
            await self._webhooks.deliver_due(self._webhook_http)

    def start_webhook_pump(
        self, url: str, *, http: httpx.AsyncClient, interval_s: float = 1.0
    ) -> asyncio.Task[None]:
        """Deliver Airtm webhooks to ``url`` every ``interval_s`` (and after control actions).

        ``http`` is owned by the caller; stop the pump with :meth:`stop_webhook_pump`.
        """
        if self._pump is not None:
            raise RuntimeError("the webhook pump is already running")
        self._webhooks = AirtmWebhookSender(
            self.airtm, self.faults, url=url, secrets=[self.airtm_webhook_secret]
        )
        self._webhook_http = http

        async def pump() -> None:
            while True:
                await self.deliver_webhooks()
                await asyncio.sleep(interval_s)

        self._pump = asyncio.create_task(pump())
        return self._pump

    async def stop_webhook_pump(self) -> None:
        """Stop the pump started by :meth:`start_webhook_pump` (no-op if none)."""
        if self._pump is None:
            return
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._pump = None
        self._webhooks = None
        self._webhook_http = None
