"""The real Horizon client: ``WalletNetwork`` over an injected ``httpx.AsyncClient``.

Every vendor failure is converted in one place, :meth:`HorizonClient._send` plus
:meth:`HorizonClient._check`:

- timeout, connection error, 429, 5xx, Horizon 504 ``timeout`` -> ``ProviderUnavailable``;
  on ``POST /transactions`` the reason is ``outcome_unknown``: the tx may still land, so the
  caller looks the hash up before doing anything else;
- 400 ``transaction_failed`` -> :class:`TransactionFailed` with ``result_codes``;
  other 4xx -> ``ProviderRejected``;
- 404 on an account or a transaction -> a typed "not found" answer, not an error;
- an undecodable body -> ``ProviderResponseInvalid``.

The base URL (and any mount prefix such as ``/_sandbox/horizon``) is the injected client's.
"""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, TypeVar

import httpx
import msgspec

from common.metrics import provider_call
from common.money import AmountFormatError
from providers.errors import ProviderRejected, ProviderResponseInvalid, ProviderUnavailable
from providers.stellar import horizon_wire as wire
from providers.stellar.port import (
    AccountState,
    AssetBalanceChange,
    FeeStats,
    LedgerInfo,
    Order,
    PaymentPage,
    SubmitResult,
    TransactionFailed,
    TransactionInfo,
)

__all__ = ["HorizonClient"]

_PROVIDER: Final = "stellar"
_T = TypeVar("_T")
# Horizon caps a page at 200 records.
_PAGE_LIMIT_MAX: Final = 200


@contextmanager
def _invalid_response(what: str) -> Iterator[None]:
    """Turn any decoding or conversion failure into ``ProviderResponseInvalid``."""
    try:
        yield
    except (msgspec.DecodeError, msgspec.ValidationError, AmountFormatError, ValueError) as exc:
        raise ProviderResponseInvalid(
            f"Horizon sent an undecodable {what}: {exc}", provider=_PROVIDER
        ) from exc


def _decode(response: httpx.Response, kind: type[_T], what: str) -> _T:
    with _invalid_response(what):
        return msgspec.json.decode(response.content, type=kind)


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(int(value)) if value.isdigit() else None


class HorizonClient:
    """Talks to Horizon (or the sandbox's Horizon app) with the orchestrator's own httpx client.

    Args:
        http: A client whose ``base_url`` is the Horizon root. Its lifecycle is the caller's.
        usdc_issuer: The issuer whose ``USDC`` counts as USDC in account balances.
        get_timeout_s: Bound on each read; Horizon answers reads quickly.
        post_timeout_s: Bound on a submit; Horizon answers within about 30 s (else 504).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        usdc_issuer: str,
        get_timeout_s: float = 10.0,
        post_timeout_s: float = 35.0,
    ) -> None:
        self._http = http
        self._usdc_issuer = usdc_issuer
        self._get_timeout_s = get_timeout_s
        self._post_timeout_s = post_timeout_s

    async def get_account(self, account_id: str) -> AccountState:
        """``GET /accounts/{id}``; a 404 gives ``exists=False``."""
        response = await self._read(f"/accounts/{account_id}", allow_404=True)
        if response is None:
            return AccountState(account_id=account_id, exists=False)
        account = _decode(response, wire.WireAccount, "account")
        with _invalid_response("account"):
            return wire.account_state(account, self._usdc_issuer)

    async def submit_transaction(self, envelope_xdr: str, *, tx_hash: str) -> SubmitResult:
        """``POST /transactions`` (form ``tx=``); see the module docstring for the error mapping."""
        response = await self._send("POST", "/transactions", data={"tx": envelope_xdr}, submit=True)
        self._check(response, submit=True)
        tx = _decode(response, wire.WireTransaction, "transaction")
        if tx.hash != tx_hash:
            # Answering for another transaction would book the wrong movement.
            raise ProviderResponseInvalid(
                f"Horizon answered for {tx.hash}, expected {tx_hash}", provider=_PROVIDER
            )
        with _invalid_response("transaction"):
            return SubmitResult(
                hash=tx.hash,
                ledger=tx.ledger,
                fee_charged=int(tx.fee_charged),
                result_xdr=tx.result_xdr,
            )

    async def get_transaction(
        self, tx_hash: str, *, with_balance_changes: bool = False
    ) -> TransactionInfo:
        """``GET /transactions/{hash}``; a 404 gives ``found=False``.

        With ``with_balance_changes``, also reads ``/transactions/{hash}/payments`` to collect
        the ``asset_balance_changes`` of its ``invoke_host_function`` operations.
        """
        response = await self._read(f"/transactions/{tx_hash}", allow_404=True)
        if response is None:
            return TransactionInfo(hash=tx_hash, found=False)
        tx = _decode(response, wire.WireTransaction, "transaction")
        changes: tuple[AssetBalanceChange, ...] = ()
        if with_balance_changes:
            page = await self._payments_page(
                f"/transactions/{tx_hash}/payments",
                {"limit": str(_PAGE_LIMIT_MAX), "include_failed": "true"},
            )
            changes = tuple(c for r in page.records for c in r.asset_balance_changes)
        with _invalid_response("transaction"):
            return wire.transaction_info(tx, changes)

    async def list_payments(
        self,
        account_id: str,
        *,
        cursor: str | None = None,
        order: Order = "asc",
        limit: int = _PAGE_LIMIT_MAX,
        include_failed: bool = False,
    ) -> PaymentPage:
        """``GET /accounts/{id}/payments`` with ``join=transactions``; one page.

        ``next_cursor`` is the last record's paging token, or ``cursor`` itself on an empty
        page, so a scanner can always persist it.
        """
        if not 1 <= limit <= _PAGE_LIMIT_MAX:
            raise ValueError(f"limit must be 1..{_PAGE_LIMIT_MAX}")
        params = {
            "order": order,
            "limit": str(limit),
            "include_failed": "true" if include_failed else "false",
            "join": "transactions",
        }
        if cursor is not None:
            params["cursor"] = cursor
        page = await self._payments_page(f"/accounts/{account_id}/payments", params)
        next_cursor = page.records[-1].paging_token if page.records else cursor
        return PaymentPage(records=page.records, next_cursor=next_cursor)

    async def latest_ledger(self) -> LedgerInfo:
        """``GET /ledgers?order=desc&limit=1``."""
        response = await self._read("/ledgers", params={"order": "desc", "limit": "1"})
        assert response is not None
        page = _decode(response, wire.WireLedgerPage, "ledger page")
        with _invalid_response("ledger page"):
            return wire.ledger_info(page)

    async def fee_stats(self) -> FeeStats:
        """``GET /fee_stats``."""
        response = await self._read("/fee_stats")
        assert response is not None
        stats = _decode(response, wire.WireFeeStats, "fee stats")
        with _invalid_response("fee stats"):
            return wire.fee_stats(stats)

    async def _payments_page(self, path: str, params: dict[str, str]) -> PaymentPage:
        response = await self._read(path, params=params)
        assert response is not None
        page = _decode(response, wire.WirePaymentPage, "payments page")
        with _invalid_response("payments page"):
            records = tuple(wire.payment_record(r) for r in page.embedded.records)
        return PaymentPage(records=records, next_cursor=None)

    async def _read(
        self, path: str, *, params: dict[str, str] | None = None, allow_404: bool = False
    ) -> httpx.Response | None:
        response = await self._send("GET", path, params=params, submit=False)
        if allow_404 and response.status_code == 404:
            return None
        self._check(response, submit=False)
        return response

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        submit: bool,
    ) -> httpx.Response:
        """Send one request; transport failures become ``ProviderUnavailable``."""
        timeout_s = self._post_timeout_s if submit else self._get_timeout_s
        try:
            with provider_call(_PROVIDER, method, path) as call:
                # asyncio.timeout as well as httpx's: in-process transports (ASGI) ignore httpx's.
                async with asyncio.timeout(timeout_s):
                    response = await self._http.request(
                        method, path, params=params, data=data, timeout=timeout_s
                    )
                call.answered(response.status_code)
                return response
        except httpx.ConnectError as exc:
            # The request never left: nothing can have landed.
            raise ProviderUnavailable(
                "cannot connect to Horizon", provider=_PROVIDER, reason="connection"
            ) from exc
        except (TimeoutError, httpx.TransportError) as exc:
            reason = "outcome_unknown" if submit else "timeout"
            raise ProviderUnavailable(
                f"Horizon did not answer: {type(exc).__name__}", provider=_PROVIDER, reason=reason
            ) from exc

    def _check(self, response: httpx.Response, *, submit: bool) -> None:
        """Raise the provider error an unsuccessful answer means; return on 2xx."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429:
            raise ProviderUnavailable(
                "Horizon rate limit",
                provider=_PROVIDER,
                status_code=status,
                reason="rate_limited",
                retry_after_s=_retry_after_s(response),
            )
        if status >= 500:
            # A 504 ``timeout`` on submit means Horizon gave up waiting, not that core did.
            raise ProviderUnavailable(
                f"Horizon answered {status}",
                provider=_PROVIDER,
                status_code=status,
                reason="outcome_unknown" if submit else "server_error",
            )
        problem = _decode(response, wire.Problem, f"{status} problem")
        codes = problem.result_codes()
        if problem.kind == "transaction_failed" and codes is not None:
            raise TransactionFailed(
                problem.detail or problem.title,
                result_codes=codes,
                result_xdr=problem.extras.result_xdr if problem.extras else None,
                status_code=status,
            )
        raise ProviderRejected(
            problem.detail or problem.title or f"Horizon answered {status}",
            provider=_PROVIDER,
            status_code=status,
            reason=problem.kind or str(status),
        )
