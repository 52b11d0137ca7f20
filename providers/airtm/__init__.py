"""Airtm (fiat top-ups and withdrawals): the ``FiatProvider`` port, its HTTP client and webhooks.

Flows depend on ``port``; ``client`` and ``webhooks`` are the adapters wired in by the API.
"""

from providers.airtm.client import AirtmClient, AirtmSettings
from providers.airtm.port import (
    AirtmUser,
    Balance,
    FiatProvider,
    Payin,
    PayinCreate,
    PayinStatus,
    Payout,
    PayoutCreate,
    PayoutEvent,
    PayoutStatus,
)
from providers.airtm.webhooks import (
    SignatureFailure,
    WebhookEvent,
    WebhookSignatureInvalid,
    verify_webhook,
)

__all__ = [
    "AirtmClient",
    "AirtmSettings",
    "AirtmUser",
    "Balance",
    "FiatProvider",
    "Payin",
    "PayinCreate",
    "PayinStatus",
    "Payout",
    "PayoutCreate",
    "PayoutEvent",
    "PayoutStatus",
    "SignatureFailure",
    "WebhookEvent",
    "WebhookSignatureInvalid",
    "verify_webhook",
]
