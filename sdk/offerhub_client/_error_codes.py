"""One class per API error code (api.md section 2), under its family; see ``errors``."""

from offerhub_client._error_families import (
    AuthenticationError,
    BadRequest,
    BusinessRuleError,
    Conflict,
    NotFound,
    PermissionDenied,
    ProviderError,
    ServerError,
    ServiceUnavailable,
)

__all__ = [
    "AccountNotFound",
    "AirtmUserAlreadyLinked",
    "AirtmUserInvalid",
    "AirtmUserNotLinked",
    "ApiKeyNotFound",
    "ConcurrentUpdate",
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
    "MilestoneNotFound",
    "OrderAlreadyExists",
    "OrderNotFound",
    "ProviderRateLimited",
    "ProviderUnavailable",
    "ReconciliationAlreadyRunning",
    "ReconciliationRunNotFound",
    "ReserveMismatchAmount",
    "StellarNetworkError",
    "TopUpNotFound",
    "TransferNotFound",
    "Unauthorized",
    "UserNotFound",
    "ValidationError",
    "WalletNotFound",
    "WalletNotReady",
    "WebhookDeliveryNotFound",
    "WebhookEndpointNotFound",
    "WebhookSignatureInvalid",
    "WithdrawalDestinationInvalid",
    "WithdrawalNotCommittable",
    "WithdrawalNotFound",
]


class ValidationError(BadRequest):
    """400 VALIDATION_ERROR; ``fields`` lists every offending input."""

    code = "VALIDATION_ERROR"

    @property
    def fields(self) -> list[dict[str, str]]:
        """``[{field, message}]`` from ``details.fields``."""
        return list(self.details.get("fields", []))


class InvalidAmountFormat(BadRequest):
    """400: an amount is not a decimal string of up to 12 + 7 digits."""

    code = "INVALID_AMOUNT_FORMAT"


class InvalidAmount(BadRequest):
    """400: zero, outside the /config limits, or parts that do not add up."""

    code = "INVALID_AMOUNT"


class InvalidCurrency(BadRequest):
    """400: the currency is not USD."""

    code = "INVALID_CURRENCY"


class InvalidRequest(BadRequest):
    """400: well-formed but self-contradictory (buyer = seller, ...)."""

    code = "INVALID_REQUEST"


class Unauthorized(AuthenticationError):
    """401: no ``Authorization: Bearer`` header."""

    code = "UNAUTHORIZED"


class InvalidApiKey(AuthenticationError):
    """401: the key is unknown, revoked or wrong."""

    code = "INVALID_API_KEY"


class WebhookSignatureInvalid(AuthenticationError):
    """401: an inbound provider webhook's signature was refused."""

    code = "WEBHOOK_SIGNATURE_INVALID"


class InsufficientScope(PermissionDenied):
    """403 INSUFFICIENT_SCOPE: ``details {required_scope, current_scopes}``."""

    code = "INSUFFICIENT_SCOPE"


class UserNotFound(NotFound):
    """404 USER_NOT_FOUND (``details.field`` names the input)."""

    code = "USER_NOT_FOUND"


class WalletNotFound(NotFound):
    """404 WALLET_NOT_FOUND."""

    code = "WALLET_NOT_FOUND"


class OrderNotFound(NotFound):
    """404 ORDER_NOT_FOUND."""

    code = "ORDER_NOT_FOUND"


class EscrowNotFound(NotFound):
    """404 ESCROW_NOT_FOUND: the order has no live escrow."""

    code = "ESCROW_NOT_FOUND"


class MilestoneNotFound(NotFound):
    """404 MILESTONE_NOT_FOUND."""

    code = "MILESTONE_NOT_FOUND"


class DisputeNotFound(NotFound):
    """404 DISPUTE_NOT_FOUND."""

    code = "DISPUTE_NOT_FOUND"


class TopUpNotFound(NotFound):
    """404 TOPUP_NOT_FOUND."""

    code = "TOPUP_NOT_FOUND"


class WithdrawalNotFound(NotFound):
    """404 WITHDRAWAL_NOT_FOUND."""

    code = "WITHDRAWAL_NOT_FOUND"


class ApiKeyNotFound(NotFound):
    """404 API_KEY_NOT_FOUND."""

    code = "API_KEY_NOT_FOUND"


class MarketplaceNotFound(NotFound):
    """404 MARKETPLACE_NOT_FOUND."""

    code = "MARKETPLACE_NOT_FOUND"


class WebhookEndpointNotFound(NotFound):
    """404 WEBHOOK_ENDPOINT_NOT_FOUND."""

    code = "WEBHOOK_ENDPOINT_NOT_FOUND"


class WebhookDeliveryNotFound(NotFound):
    """404 WEBHOOK_DELIVERY_NOT_FOUND."""

    code = "WEBHOOK_DELIVERY_NOT_FOUND"


class AccountNotFound(NotFound):
    """404 ACCOUNT_NOT_FOUND (ledger account)."""

    code = "ACCOUNT_NOT_FOUND"


class TransferNotFound(NotFound):
    """404 TRANSFER_NOT_FOUND (ledger transfer)."""

    code = "TRANSFER_NOT_FOUND"


class ReconciliationRunNotFound(NotFound):
    """404 RECONCILIATION_RUN_NOT_FOUND."""

    code = "RECONCILIATION_RUN_NOT_FOUND"


class InvalidState(Conflict):
    """409 INVALID_STATE: the action is not allowed now (re-read the resource).

    ``details {resource_type, resource_id, current_state, allowed_states}``.
    """

    code = "INVALID_STATE"


class EscrowAlreadyExists(Conflict):
    """409 ESCROW_ALREADY_EXISTS."""

    code = "ESCROW_ALREADY_EXISTS"


class EscrowNotReady(Conflict):
    """409 ESCROW_NOT_READY: release or refund while the escrow is not FUNDED."""

    code = "ESCROW_NOT_READY"


class EscrowAlreadyFunded(Conflict):
    """409 ESCROW_ALREADY_FUNDED."""

    code = "ESCROW_ALREADY_FUNDED"


class DisputeAlreadyOpen(Conflict):
    """409 DISPUTE_ALREADY_OPEN."""

    code = "DISPUTE_ALREADY_OPEN"


class OrderAlreadyExists(Conflict):
    """409 ORDER_ALREADY_EXISTS: ``details.order_id`` is the order with that client ref."""

    code = "ORDER_ALREADY_EXISTS"


class AirtmUserAlreadyLinked(Conflict):
    """409 AIRTM_USER_ALREADY_LINKED."""

    code = "AIRTM_USER_ALREADY_LINKED"


class WithdrawalNotCommittable(Conflict):
    """409 WITHDRAWAL_NOT_COMMITTABLE."""

    code = "WITHDRAWAL_NOT_COMMITTABLE"


class ReconciliationAlreadyRunning(Conflict):
    """409 RECONCILIATION_ALREADY_RUNNING: ``details.run_id``."""

    code = "RECONCILIATION_ALREADY_RUNNING"


class IdempotencyKeyReused(Conflict):
    """409: the Idempotency-Key was used for a different request; use a new key."""

    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInProgress(Conflict):
    """409: the same key is still executing (retried automatically; raised when retries end)."""

    code = "IDEMPOTENCY_KEY_IN_PROGRESS"


class InsufficientFunds(BusinessRuleError):
    """422 INSUFFICIENT_FUNDS: ``details {user_id, available, requested, currency}``."""

    code = "INSUFFICIENT_FUNDS"


class ReserveMismatchAmount(BusinessRuleError):
    """422 RESERVE_MISMATCH_AMOUNT."""

    code = "RESERVE_MISMATCH_AMOUNT"


class AirtmUserNotLinked(BusinessRuleError):
    """422 AIRTM_USER_NOT_LINKED."""

    code = "AIRTM_USER_NOT_LINKED"


class AirtmUserInvalid(BusinessRuleError):
    """422 AIRTM_USER_INVALID: ``details.reason``."""

    code = "AIRTM_USER_INVALID"


class WalletNotReady(BusinessRuleError):
    """422 WALLET_NOT_READY: a wallet is not activated yet; try again later."""

    code = "WALLET_NOT_READY"


class EscrowInsufficientFunds(BusinessRuleError):
    """422 ESCROW_INSUFFICIENT_FUNDS."""

    code = "ESCROW_INSUFFICIENT_FUNDS"


class EscrowFundingFailed(BusinessRuleError):
    """422 ESCROW_FUNDING_FAILED: ``details.provider_message``."""

    code = "ESCROW_FUNDING_FAILED"


class WithdrawalDestinationInvalid(BusinessRuleError):
    """422 WITHDRAWAL_DESTINATION_INVALID: ``details.reason``."""

    code = "WITHDRAWAL_DESTINATION_INVALID"


class InternalError(ServerError):
    """500 INTERNAL_ERROR."""

    code = "INTERNAL_ERROR"


class ProviderRateLimited(ProviderError):
    """502 PROVIDER_RATE_LIMITED."""

    code = "PROVIDER_RATE_LIMITED"


class StellarNetworkError(ProviderError):
    """502 STELLAR_NETWORK_ERROR."""

    code = "STELLAR_NETWORK_ERROR"


class ProviderUnavailable(ServiceUnavailable):
    """503 PROVIDER_UNAVAILABLE: a provider is not configured or unreachable."""

    code = "PROVIDER_UNAVAILABLE"


class ConcurrentUpdate(ServiceUnavailable):
    """503 CONCURRENT_UPDATE: contention outlasted the server's own retries; retry later."""

    code = "CONCURRENT_UPDATE"
