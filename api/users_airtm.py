"""The Airtm account lookup behind ``POST /users/{user_id}/airtm/link`` (api.md 3.3).

providers.md 4.1 describes ``GET /users/{email}`` -> ``{id, status, primaryEmail, isVerified}``,
but ``providers.airtm.port.FiatProvider`` has no such call yet. The route therefore asks the
configured fiat provider for :class:`AirtmUserLookup` (the signature the port should adopt) and
answers 503 ``PROVIDER_UNAVAILABLE`` when it is missing: nothing is linked without the check.
"""

from typing import Final, Protocol, runtime_checkable

import msgspec

from api.provider_errors import provider_call
from common.errors import AirtmUserInvalid, AppError, ProviderUnavailableError
from providers.errors import ProviderRejected

__all__ = ["AirtmAccount", "AirtmUserLookup", "checked_airtm_account"]

# Airtm's "recipient not found" business code (providers.md 4.1), besides a plain 404.
_RECIPIENT_NOT_FOUND: Final = "415059"


class AirtmAccount(msgspec.Struct, frozen=True, kw_only=True):
    """An Airtm account as ``GET /users/{email}`` reports it."""

    id: str
    email: str
    status: str  # "active" | "inactive"
    is_verified: bool


@runtime_checkable
class AirtmUserLookup(Protocol):
    """What a fiat provider needs to offer for linking: the account behind an email."""

    async def get_user_by_email(self, email: str) -> AirtmAccount:
        """The account; ``ProviderRejected`` with status 404 when no account has this email."""
        ...


def _not_found(error: ProviderRejected) -> AppError | None:
    if error.status_code == 404 or error.reason == _RECIPIENT_NOT_FOUND:
        return AirtmUserInvalid(reason="USER_NOT_FOUND")
    return None


async def checked_airtm_account(fiat: object, email: str) -> AirtmAccount | AirtmUserInvalid:
    """Look ``email`` up at Airtm: the account, or why it cannot be linked.

    The refusal is returned, not raised, so the route raises it inside its idempotent work and
    it is stored like every 422 (api.md 1.8). Call outside any database transaction.

    Raises:
        ProviderUnavailableError: the provider offers no user lookup (503).
        AppError: a provider failure, translated by ``api.provider_errors``.
    """
    if not isinstance(fiat, AirtmUserLookup):
        raise ProviderUnavailableError(
            "The Airtm user lookup is not available in this installation", provider="airtm"
        )
    try:
        async with provider_call(rejected=_not_found):
            account = await fiat.get_user_by_email(email)
    except AirtmUserInvalid as refused:
        return refused
    if account.status.lower() != "active":
        return AirtmUserInvalid(reason="USER_INACTIVE")
    if not account.is_verified:
        return AirtmUserInvalid(reason="USER_NOT_VERIFIED")
    return account
