"""Every error the client raises: one class per API error code, grouped in families by status.

OfferHubError
 +-- APIConnectionError          no answer: connection refused or reset, DNS, protocol error
 |    +-- APITimeoutError        no answer in time
 +-- APIError                    the server answered ``{"error": {code, message, details}}``
 |    +-- BadRequest             400 VALIDATION_ERROR (ValidationError), INVALID_AMOUNT_FORMAT,
 |    |                              INVALID_AMOUNT, INVALID_CURRENCY, INVALID_REQUEST
 |    +-- AuthenticationError    401 UNAUTHORIZED, INVALID_API_KEY, WEBHOOK_SIGNATURE_INVALID
 |    +-- PermissionDenied       403 INSUFFICIENT_SCOPE
 |    +-- NotFound               404 NOT_FOUND and every *_NOT_FOUND code
 |    +-- MethodNotAllowed       405
 |    +-- Conflict               409 INVALID_STATE, IDEMPOTENCY_KEY_REUSED, ... (one class each)
 |    +-- PayloadTooLarge        413
 |    +-- UnsupportedMediaType   415
 |    +-- BusinessRuleError      422 INSUFFICIENT_FUNDS, WALLET_NOT_READY, ... (one class each)
 |    +-- RateLimited            429 (``retry_after_s``)
 |    +-- ServerError            5xx INTERNAL_ERROR; ProviderError (502: PROVIDER_ERROR,
 |                                   PROVIDER_RATE_LIMITED, STELLAR_NETWORK_ERROR),
 |                                   ServiceUnavailable (503: SERVICE_UNAVAILABLE,
 |                                   PROVIDER_UNAVAILABLE, CONCURRENT_UPDATE),
 |                                   ProviderTimeout (504)
 +-- WebhookVerificationError    ``verify_webhook`` refused a delivery
 +-- WaitTimeout                 ``wait_for_status`` gave up; UnexpectedState: a state that
                                     can no longer reach the target

An answer with a code this version does not know becomes its family's class (by status), so
new codes of v1 still land in the right ``except``.
"""

from collections.abc import Mapping
from typing import Final

from offerhub_client._error_codes import (
    AccountNotFound,
    AirtmUserAlreadyLinked,
    AirtmUserInvalid,
    AirtmUserNotLinked,
    ApiKeyNotFound,
    ConcurrentUpdate,
    DisputeAlreadyOpen,
    DisputeNotFound,
    EscrowAlreadyExists,
    EscrowAlreadyFunded,
    EscrowFundingFailed,
    EscrowInsufficientFunds,
    EscrowNotFound,
    EscrowNotReady,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InsufficientFunds,
    InsufficientScope,
    InternalError,
    InvalidAmount,
    InvalidAmountFormat,
    InvalidApiKey,
    InvalidCurrency,
    InvalidRequest,
    InvalidState,
    MarketplaceNotFound,
    MilestoneNotFound,
    OrderAlreadyExists,
    OrderNotFound,
    ProviderRateLimited,
    ProviderUnavailable,
    ReconciliationAlreadyRunning,
    ReconciliationRunNotFound,
    ReserveMismatchAmount,
    StellarNetworkError,
    TopUpNotFound,
    TransferNotFound,
    Unauthorized,
    UserNotFound,
    ValidationError,
    WalletNotFound,
    WalletNotReady,
    WebhookDeliveryNotFound,
    WebhookEndpointNotFound,
    WebhookSignatureInvalid,
    WithdrawalDestinationInvalid,
    WithdrawalNotCommittable,
    WithdrawalNotFound,
)
from offerhub_client._error_families import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequest,
    BusinessRuleError,
    Conflict,
    MethodNotAllowed,
    NotFound,
    OfferHubError,
    PayloadTooLarge,
    PermissionDenied,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    UnexpectedState,
    UnsupportedMediaType,
    WaitTimeout,
    WebhookVerificationError,
    retry_after_s,
)

__all__ = [
    "ERROR_CLASSES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountNotFound",
    "AirtmUserAlreadyLinked",
    "AirtmUserInvalid",
    "AirtmUserNotLinked",
    "ApiKeyNotFound",
    "AuthenticationError",
    "BadRequest",
    "BusinessRuleError",
    "ConcurrentUpdate",
    "Conflict",
    "DisputeAlreadyOpen",
    "DisputeNotFound",
    "EscrowAlreadyExists",
    "EscrowAlreadyFunded",
    "EscrowFundingFailed",
    "EscrowInsufficientFunds",
    "EscrowNotFound",
    "EscrowNotReady",
    "IdempotencyKeyInProgress",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "InsufficientScope",
    "InternalError",
    "InvalidAmount",
    "InvalidAmountFormat",
    "InvalidApiKey",
    "InvalidCurrency",
    "InvalidRequest",
    "InvalidState",
    "MarketplaceNotFound",
    "MethodNotAllowed",
    "MilestoneNotFound",
    "NotFound",
    "OfferHubError",
    "OrderAlreadyExists",
    "OrderNotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "ReconciliationAlreadyRunning",
    "ReconciliationRunNotFound",
    "ReserveMismatchAmount",
    "ServerError",
    "ServiceUnavailable",
    "StellarNetworkError",
    "TopUpNotFound",
    "TransferNotFound",
    "Unauthorized",
    "UnexpectedState",
    "UnsupportedMediaType",
    "UserNotFound",
    "ValidationError",
    "WaitTimeout",
    "WalletNotFound",
    "WalletNotReady",
    "WebhookDeliveryNotFound",
    "WebhookEndpointNotFound",
    "WebhookSignatureInvalid",
    "WebhookVerificationError",
    "WithdrawalDestinationInvalid",
    "WithdrawalNotCommittable",
    "WithdrawalNotFound",
    "error_from_response",
    "retry_after_s",
]


def _leaves() -> dict[str, type[APIError]]:
    found: dict[str, type[APIError]] = {}
    pending: list[type[APIError]] = [APIError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        # A family's own code (e.g. NOT_FOUND) maps to the family; leaves override below.
        found.setdefault(cls.code, cls)
        if not cls.__subclasses__():
            found[cls.code] = cls
    return found


ERROR_CLASSES: Final[Mapping[str, type[APIError]]] = _leaves()
_FAMILIES: Final[Mapping[int, type[APIError]]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: BusinessRuleError,
    429: RateLimited,
    500: InternalError,
    502: ProviderError,
    503: ServiceUnavailable,
    504: ProviderTimeout,
}


def error_from_response(status_code: int, body: object, headers: Mapping[str, str]) -> APIError:
    """The exception for an error answer: by code, else by status family."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    message = str(error.get("message") or f"HTTP {status_code}")
    details = error.get("details") if isinstance(error.get("details"), dict) else {}
    cls = ERROR_CLASSES.get(code or "") or _FAMILIES.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else APIError
    request_id = next((v for k, v in headers.items() if k.lower() == "x-request-id"), None)
    return cls(
        message,
        code=code,
        status_code=status_code,
        details=details,
        request_id=request_id,
        headers=headers,
    )
