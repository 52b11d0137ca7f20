"""The Airtm account check behind ``POST /users/{user_id}/airtm/link`` (api.md 3.3).

Linking stores the Airtm user id and email only after Airtm confirms, through
``FiatProvider.get_user_by_email`` (providers.md 4.1 ``GET /users/{email}``), that the account
exists, is active and is verified.
"""

from api.provider_errors import provider_call
from common.errors import AirtmUserInvalid, AppError
from providers.airtm.client import is_not_found
from providers.airtm.port import AirtmUser, FiatProvider
from providers.errors import ProviderRejected

__all__ = ["checked_airtm_account"]


def _not_found(error: ProviderRejected) -> AppError | None:
    return AirtmUserInvalid(reason="USER_NOT_FOUND") if is_not_found(error) else None


async def checked_airtm_account(fiat: FiatProvider, email: str) -> AirtmUser | AirtmUserInvalid:
    """Look ``email`` up at Airtm: the account, or why it cannot be linked.

    The refusal is returned, not raised, so the route raises it inside its idempotent work and
    it is stored like every 422 (api.md 1.8). Call outside any database transaction.

    Raises:
        AppError: a provider failure, translated by ``api.provider_errors``.
    """
    try:
        async with provider_call(rejected=_not_found):
            account = await fiat.get_user_by_email(email)
    except AirtmUserInvalid as refused:
        return refused
    # Airtm documents lower-case statuses; compare case-insensitively all the same.
    if account.status.lower() != "active":
        return AirtmUserInvalid(reason="USER_INACTIVE")
    if not account.is_verified:
        return AirtmUserInvalid(reason="USER_NOT_VERIFIED")
    return account
