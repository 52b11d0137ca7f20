"""The application error root, shared by every package.

Each error carries a stable ``code`` (the API's error code) and uses its docstring as the
default message. The API maps each class to an HTTP status in one table.

AppError
 +-- BadRequest                  (400 family: the request contradicts itself or the rules)
 +-- NotFound                    (404 family: resource unknown in the caller's marketplace)
 +-- Conflict                    (409 family)
 |    +-- InvalidTransition      the event is not allowed in the current state
 |    +-- ConcurrentUpdate       the row changed under us; retry the whole block
 +-- Rejected                    (422 family: a business rule said no)
 |    +-- InsufficientFunds
 +-- ProviderFailure             (502 family: a provider refused or answered nonsense)
 +-- InvariantViolation          the database refused something that must never happen (a bug)
 +-- ServiceUnavailable          a dependency (database server) is not reachable

The leaf classes below the families carry the codes of api.md section 2, one class per code.
"""

from typing import Any, ClassVar

__all__ = [
    "AccountNotFound",
    "AirtmUserAlreadyLinked",
    "AirtmUserInvalid",
    "AirtmUserNotLinked",
    "ApiKeyNotFound",
    "AppError",
    "BadRequest",
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
    "InvalidAmount",
    "InvalidAmountFormat",
    "InvalidCurrency",
    "InvalidRequest",
    "InvalidTransition",
    "InvariantViolation",
    "MarketplaceNotFound",
    "MilestoneNotFound",
    "NotFound",
    "OrderAlreadyExists",
    "OrderNotFound",
    "ProviderFailure",
    "ProviderRateLimited",
    "ProviderTimeout",
    "ProviderUnavailableError",
    "ReconciliationAlreadyRunning",
    "ReconciliationRunNotFound",
    "Rejected",
    "ReserveMismatchAmount",
    "ServiceUnavailable",
    "StellarNetworkError",
    "TopUpNotFound",
    "TransferNotFound",
    "UserNotFound",
    "ValidationFailed",
    "WalletNotFound",
    "WalletNotReady",
    "WebhookDeliveryNotFound",
    "WebhookEndpointNotFound",
    "WithdrawalDestinationInvalid",
    "WithdrawalNotCommittable",
    "WithdrawalNotFound",
]


class AppError(Exception):
    """An application error occurred."""

    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip().splitlines()[0]
        self.details = details
        super().__init__(self.message)


class NotFound(AppError):
    """The resource does not exist."""

    code = "NOT_FOUND"


class Conflict(AppError):
    """The request conflicts with the current state."""

    code = "CONFLICT"


class InvalidTransition(Conflict):
    """The action is not allowed in the resource's current state."""

    code = "INVALID_STATE"


class ConcurrentUpdate(Conflict):
    """The resource was changed concurrently; retry the whole operation."""

    code = "CONCURRENT_UPDATE"


class Rejected(AppError):
    """A business rule refused the request."""

    code = "REJECTED"


class InsufficientFunds(Rejected):
    """The available balance does not cover the amount."""

    code = "INSUFFICIENT_FUNDS"


class InvariantViolation(AppError):
    """The database refused a change that breaks a ledger invariant; this is a bug."""

    code = "INTERNAL_ERROR"


class ServiceUnavailable(AppError):
    """A dependency is not reachable; try again later."""

    code = "SERVICE_UNAVAILABLE"


# -- 400 -----------------------------------------------------------------------------------------


class BadRequest(AppError):
    """The request is invalid."""

    code = "INVALID_REQUEST"


class ValidationFailed(BadRequest):
    """Request is invalid."""

    code = "VALIDATION_ERROR"


class InvalidAmountFormat(BadRequest):
    """An amount is not a decimal string with at most 7 decimals."""

    code = "INVALID_AMOUNT_FORMAT"


class InvalidCurrency(BadRequest):
    """Only USD is supported."""

    code = "INVALID_CURRENCY"


class InvalidAmount(BadRequest):
    """The amount is zero, outside the limits, or does not add up."""

    code = "INVALID_AMOUNT"


class InvalidRequest(BadRequest):
    """The request contradicts itself."""

    code = "INVALID_REQUEST"


# -- 404 -----------------------------------------------------------------------------------------


class UserNotFound(NotFound):
    """User not found."""

    code = "USER_NOT_FOUND"


class WalletNotFound(NotFound):
    """The user has no wallet."""

    code = "WALLET_NOT_FOUND"


class OrderNotFound(NotFound):
    """Order not found."""

    code = "ORDER_NOT_FOUND"


class EscrowNotFound(NotFound):
    """The order has no live escrow."""

    code = "ESCROW_NOT_FOUND"


class MilestoneNotFound(NotFound):
    """Milestone not found on this order."""

    code = "MILESTONE_NOT_FOUND"


class DisputeNotFound(NotFound):
    """Dispute not found."""

    code = "DISPUTE_NOT_FOUND"


class TopUpNotFound(NotFound):
    """Top-up not found."""

    code = "TOPUP_NOT_FOUND"


class WithdrawalNotFound(NotFound):
    """Withdrawal not found."""

    code = "WITHDRAWAL_NOT_FOUND"


class ApiKeyNotFound(NotFound):
    """API key not found."""

    code = "API_KEY_NOT_FOUND"


class MarketplaceNotFound(NotFound):
    """Marketplace not found."""

    code = "MARKETPLACE_NOT_FOUND"


class WebhookEndpointNotFound(NotFound):
    """Webhook endpoint not found."""

    code = "WEBHOOK_ENDPOINT_NOT_FOUND"


class WebhookDeliveryNotFound(NotFound):
    """Webhook delivery not found."""

    code = "WEBHOOK_DELIVERY_NOT_FOUND"


class AccountNotFound(NotFound):
    """Ledger account not found."""

    code = "ACCOUNT_NOT_FOUND"


class TransferNotFound(NotFound):
    """Ledger transfer not found."""

    code = "TRANSFER_NOT_FOUND"


class ReconciliationRunNotFound(NotFound):
    """Reconciliation run not found."""

    code = "RECONCILIATION_RUN_NOT_FOUND"


# -- 409 -----------------------------------------------------------------------------------------


class EscrowAlreadyExists(Conflict):
    """The order already has an escrow."""

    code = "ESCROW_ALREADY_EXISTS"


class EscrowNotReady(Conflict):
    """The escrow is not funded."""

    code = "ESCROW_NOT_READY"


class EscrowAlreadyFunded(Conflict):
    """The escrow is already being funded or funded."""

    code = "ESCROW_ALREADY_FUNDED"


class DisputeAlreadyOpen(Conflict):
    """The order has an unresolved dispute."""

    code = "DISPUTE_ALREADY_OPEN"


class OrderAlreadyExists(Conflict):
    """An order with this client_order_ref exists."""

    code = "ORDER_ALREADY_EXISTS"


class AirtmUserAlreadyLinked(Conflict):
    """The user is linked to another Airtm account."""

    code = "AIRTM_USER_ALREADY_LINKED"


class WithdrawalNotCommittable(Conflict):
    """The withdrawal cannot be committed."""

    code = "WITHDRAWAL_NOT_COMMITTABLE"


class ReconciliationAlreadyRunning(Conflict):
    """A reconciliation run is in progress."""

    code = "RECONCILIATION_ALREADY_RUNNING"


class IdempotencyKeyReused(Conflict):
    """This Idempotency-Key was used with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInProgress(Conflict):
    """A request with this Idempotency-Key is still executing."""

    code = "IDEMPOTENCY_KEY_IN_PROGRESS"


# -- 422 -----------------------------------------------------------------------------------------


class ReserveMismatchAmount(Rejected):
    """The amount differs from the order amount."""

    code = "RESERVE_MISMATCH_AMOUNT"


class AirtmUserNotLinked(Rejected):
    """The user has no linked Airtm account."""

    code = "AIRTM_USER_NOT_LINKED"


class AirtmUserInvalid(Rejected):
    """The Airtm account is missing, inactive or unverified."""

    code = "AIRTM_USER_INVALID"


class WalletNotReady(Rejected):
    """A party's wallet is not activated yet."""

    code = "WALLET_NOT_READY"


class EscrowInsufficientFunds(Rejected):
    """The buyer wallet holds less USDC than the order amount."""

    code = "ESCROW_INSUFFICIENT_FUNDS"


class EscrowFundingFailed(Rejected):
    """The contract refused the funding."""

    code = "ESCROW_FUNDING_FAILED"


class WithdrawalDestinationInvalid(Rejected):
    """The withdrawal destination is invalid."""

    code = "WITHDRAWAL_DESTINATION_INVALID"


# -- 502 / 503 / 504 -----------------------------------------------------------------------------


class ProviderFailure(AppError):
    """A provider rejected the call or answered nonsense."""

    code = "PROVIDER_ERROR"


class ProviderRateLimited(ProviderFailure):
    """A provider is rate limiting us."""

    code = "PROVIDER_RATE_LIMITED"


class StellarNetworkError(ProviderFailure):
    """Horizon failed without a definitive result."""

    code = "STELLAR_NETWORK_ERROR"


class ProviderUnavailableError(AppError):
    """A provider is not configured or not reachable."""

    code = "PROVIDER_UNAVAILABLE"


class ProviderTimeout(AppError):
    """A provider read timed out."""

    code = "PROVIDER_TIMEOUT"
