"""The Airtm side of the top-up routes: create, read and cancel payins, then record the answer.

Every function here is called outside any database transaction (api.md 1.9, design.md: no
provider call inside a transaction). Each Airtm call is followed by its own short transaction
that hands the answer to the domain (``flows.topups``), which only ever moves a top-up forward;
so a repeated or concurrent refresh, a webhook and a reconciliation read all agree, and the
user is credited once.

Airtm's own redirects point at the public callback route, ``?status=confirmed`` after payment
and ``?status=canceled`` when the payer leaves; the payin ``code`` is the top-up id.
"""

import contextlib
import logging
from typing import Any, Final, NamedTuple

import asyncpg
from litestar import Request

from api.paths import API_PREFIX
from api.provider_errors import provider_details, translate
from api.runtime import AppRuntime
from common.errors import InvalidTransition, ProviderFailure
from common.money import format_amount
from flows import topups
from flows.topups import PayinApplied, TopUp
from flows.transitions import Actor
from ledger.db import run_in_transaction
from providers.airtm.port import FiatProvider, Payin, PayinCreate, PayinStatus
from providers.errors import ProviderError, ProviderRejected, ProviderUnavailable
from statemachines.status import TopUpStatus

__all__ = [
    "CANCELABLE",
    "PayinUris",
    "cancel_payin",
    "create_payin",
    "payin_uris",
    "refresh_topup",
]

_log = logging.getLogger(__name__)

CANCELABLE: Final = (
    TopUpStatus.TOPUP_CREATED.value,
    TopUpStatus.TOPUP_AWAITING_USER_CONFIRMATION.value,
)
# Airtm error codes (providers.md 4.1).
_PAYIN_NOT_FOUND: Final = "415031"
_PAYIN_CANNOT_CHANGE: Final = "415030"


class PayinUris(NamedTuple):
    """Where Airtm sends the payer back: our callback, with the outcome in ``status``."""

    confirmation: str
    cancel: str


def payin_uris(request: Request[Any, Any, Any], topup_id: str) -> PayinUris:
    """The callback URLs of a top-up, on the host the request reached."""
    base = str(request.base_url).rstrip("/") + f"{API_PREFIX}/topups/{topup_id}/callback"
    return PayinUris(f"{base}?status=confirmed", f"{base}?status=canceled")


def _payin_request(topup: TopUp, uris: PayinUris) -> PayinCreate:
    description = topup.description or f"Top-up of {format_amount(topup.amount_minor)} USD"
    return PayinCreate(
        code=topup.id,
        amount_minor=topup.amount_minor,
        description=description,
        confirmation_uri=uris.confirmation,
        cancel_uri=uris.cancel,
    )


def _not_found(error: ProviderRejected) -> bool:
    return error.status_code == 404 or error.reason == _PAYIN_NOT_FOUND


async def _find_payin(fiat: FiatProvider, topup: TopUp) -> Payin | None:
    """The top-up's payin (by id once known, else by code), or ``None`` if Airtm has none."""
    try:
        if topup.airtm_payin_id is not None:
            return await fiat.get_payin(topup.airtm_payin_id)
        return await fiat.get_payin_by_code(topup.id)
    except ProviderRejected as error:
        if _not_found(error):
            return None
        raise


async def _apply(runtime: AppRuntime, topup: TopUp, payin: Payin, actor: Actor) -> TopUp:
    """Hand a payin read to the domain in one transaction; wake the runner for a delivery."""

    async def work(conn: asyncpg.Connection) -> PayinApplied:
        if topup.status == TopUpStatus.TOPUP_CREATED:
            return await topups.record_payin_created(
                conn,
                marketplace_id=topup.marketplace_id,
                topup_id=topup.id,
                payin=payin,
                actor=actor,
            )
        return await topups.apply_payin_status(
            conn, marketplace_id=topup.marketplace_id, topup_id=topup.id, payin=payin, actor=actor
        )

    applied = await run_in_transaction(runtime.pool, work)
    if applied.delivery_operation_id is not None:
        runtime.started()  # the confirmed top-up's USDC delivery
    if applied.topup.status == TopUpStatus.TOPUP_CANCELED and payin.status is PayinStatus.CREATED:
        # Canceled while its payin was being created: the payin must not stay payable.
        with contextlib.suppress(ProviderError):
            await runtime.fiat.cancel_payin(payin.id)
    return applied.topup


async def create_payin(runtime: AppRuntime, topup: TopUp, uris: PayinUris, actor: Actor) -> TopUp:
    """Create (or adopt, by code) the payin of a TOPUP_CREATED top-up and record the answer.

    Returns the top-up unchanged (still TOPUP_CREATED) when Airtm could not be reached: a
    refresh, or reconciliation, creates the payin later under the same code.

    Raises:
        AppError: Airtm refused the payin (502 ``PROVIDER_ERROR``, ``details.topup_id``); the
            top-up is TOPUP_FAILED by then.
    """
    try:
        payin = await runtime.fiat.create_payin(_payin_request(topup, uris))
    except ProviderUnavailable:
        _log.warning("top-up %s: Airtm unreachable; the payin is created later", topup.id)
        return topup
    except ProviderRejected as error:
        code, reason = error.reason, error.message[:1000]

        async def failed(conn: asyncpg.Connection) -> TopUp:
            return await topups.record_payin_creation_failed(
                conn,
                marketplace_id=topup.marketplace_id,
                topup_id=topup.id,
                error_code=code,
                reason=reason,
                actor=actor,
            )

        with contextlib.suppress(InvalidTransition):  # moved on meanwhile: keep that
            await run_in_transaction(runtime.pool, failed)
        raise ProviderFailure(
            f"airtm refused the payin: {error.message}",
            **provider_details(error),
            topup_id=topup.id,
        ) from error
    return await _apply(runtime, topup, payin, actor)


async def refresh_topup(
    runtime: AppRuntime, topup: TopUp, actor: Actor, *, uris: PayinUris | None
) -> TopUp:
    """Read the payin at Airtm and apply its status (api.md 3.14 mapping).

    A TOPUP_CREATED top-up whose payin Airtm does not know yet gets it created when ``uris`` is
    given (the request that created the top-up could not reach Airtm).

    Raises:
        AppError: the read failed (``api.provider_errors`` mapping).
    """
    try:
        payin = await _find_payin(runtime.fiat, topup)
    except ProviderError as error:
        raise translate(error) from error
    if payin is None:
        if topup.status == TopUpStatus.TOPUP_CREATED and uris is not None:
            return await create_payin(runtime, topup, uris, actor)
        return topup
    return await _apply(runtime, topup, payin, actor)


def _not_cancelable(topup: TopUp) -> InvalidTransition:
    return InvalidTransition(
        f"a top-up in {topup.status} cannot be canceled",
        resource_type="topup",
        resource_id=topup.id,
        current_state=topup.status,
        allowed_states=list(CANCELABLE),
    )


async def cancel_payin(runtime: AppRuntime, topup: TopUp, actor: Actor) -> TopUp | None:
    """Cancel the top-up's payin at Airtm, if it has one.

    Returns ``None`` when the payin is canceled (or never existed); the caller then cancels
    the top-up. When Airtm says the payer is already paying (or paid), the payin is applied,
    so the top-up shows that, and 409 ``INVALID_STATE`` is raised.

    Raises:
        InvalidTransition: Airtm refused the cancel because the payin moved on.
        AppError: another provider failure (``api.provider_errors`` mapping).
    """
    fiat = runtime.fiat
    try:
        payin = await _find_payin(fiat, topup)
        if payin is None or payin.status in (PayinStatus.CANCELED, PayinStatus.BRIDGE_CANCELED):
            return None
        await fiat.cancel_payin(payin.id)
        return None
    except ProviderRejected as error:
        if error.reason != _PAYIN_CANNOT_CHANGE:
            raise translate(error) from error
    except ProviderError as error:
        raise translate(error) from error
    refreshed = await refresh_topup(runtime, topup, actor, uris=None)
    raise _not_cancelable(refreshed)
