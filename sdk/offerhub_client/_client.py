"""The two clients: :class:`OfferHub` (blocking) and :class:`AsyncOfferHub` (asyncio).

Both expose the same resource objects with the same methods; on the async client every call
is awaited, list iterators are ``async for`` and the event stream is an async iterator.
"""

import os
from collections.abc import Mapping
from typing import Final

import httpx

from offerhub_client._call import Async, Sync
from offerhub_client._transport import AsyncTransport, RetryPolicy, SyncTransport
from offerhub_client.resources import (
    Audit,
    Auth,
    Balances,
    Disputes,
    Events,
    Ledger,
    Marketplaces,
    Orders,
    Reconciliation,
    Reports,
    System,
    TopUps,
    Users,
    Wallets,
    WebhookEndpoints,
    Withdrawals,
)

__all__ = ["DEFAULT_BASE_URL", "AsyncOfferHub", "OfferHub"]

DEFAULT_BASE_URL: Final = "http://127.0.0.1:4000/api/v1"
# Longer than the server's 20 s wait for provider operations (api.md 1.9).
DEFAULT_TIMEOUT_S: Final = 30.0


def _key(api_key: str | None) -> str | None:
    return api_key if api_key is not None else os.environ.get("OFFERHUB_API_KEY")


class OfferHub:
    """A blocking client: ``OfferHub(base_url, api_key)``; use it as a context manager.

    Args:
        base_url: the API root, ``.../api/v1``.
        api_key: ``ohk_...`` (default: ``OFFERHUB_API_KEY``), or the master key.
        timeout_s: per attempt; retries follow ``retry``.
        retry: when and how long to retry (:class:`RetryPolicy`).
        transport: an httpx transport (tests, proxies); default a new connection pool.
        headers: extra headers sent with every request.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url, timeout=timeout_s, transport=transport, headers=headers
        )
        sent = SyncTransport(self.http, _key(api_key), retry or RetryPolicy())
        self.audit: Audit[Sync] = Audit(sent)
        self.auth: Auth[Sync] = Auth(sent)
        self.balances: Balances[Sync] = Balances(sent)
        self.disputes: Disputes[Sync] = Disputes(sent)
        self.events: Events[Sync] = Events(sent)
        self.ledger: Ledger[Sync] = Ledger(sent)
        self.marketplaces: Marketplaces[Sync] = Marketplaces(sent)
        self.orders: Orders[Sync] = Orders(sent)
        self.reconciliation: Reconciliation[Sync] = Reconciliation(sent)
        self.reports: Reports[Sync] = Reports(sent)
        self.system: System[Sync] = System(sent)
        self.topups: TopUps[Sync] = TopUps(sent)
        self.users: Users[Sync] = Users(sent)
        self.wallets: Wallets[Sync] = Wallets(sent)
        self.webhook_endpoints: WebhookEndpoints[Sync] = WebhookEndpoints(sent)
        self.withdrawals: Withdrawals[Sync] = Withdrawals(sent)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> "OfferHub":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncOfferHub:
    """An asyncio client with the same resources; use it as an async context manager.

    Arguments as for :class:`OfferHub` (``transport`` is an ``httpx.AsyncBaseTransport``).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, transport=transport, headers=headers
        )
        sent = AsyncTransport(self.http, _key(api_key), retry or RetryPolicy())
        self.audit: Audit[Async] = Audit(sent)
        self.auth: Auth[Async] = Auth(sent)
        self.balances: Balances[Async] = Balances(sent)
        self.disputes: Disputes[Async] = Disputes(sent)
        self.events: Events[Async] = Events(sent)
        self.ledger: Ledger[Async] = Ledger(sent)
        self.marketplaces: Marketplaces[Async] = Marketplaces(sent)
        self.orders: Orders[Async] = Orders(sent)
        self.reconciliation: Reconciliation[Async] = Reconciliation(sent)
        self.reports: Reports[Async] = Reports(sent)
        self.system: System[Async] = System(sent)
        self.topups: TopUps[Async] = TopUps(sent)
        self.users: Users[Async] = Users(sent)
        self.wallets: Wallets[Async] = Wallets(sent)
        self.webhook_endpoints: WebhookEndpoints[Async] = WebhookEndpoints(sent)
        self.withdrawals: Withdrawals[Async] = Withdrawals(sent)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncOfferHub":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
