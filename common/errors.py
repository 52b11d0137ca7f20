"""The application error root, shared by every package.

Each error carries a stable ``code`` (the API's error code) and uses its docstring as the
default message. The API maps each class to an HTTP status in one table.

AppError
 +-- NotFound                    (404 family: resource unknown in the caller's marketplace)
 +-- Conflict                    (409 family)
 |    +-- InvalidTransition      the event is not allowed in the current state
 |    +-- ConcurrentUpdate       the row changed under us; retry the whole block
 +-- Rejected                    (422 family: a business rule said no)
 |    +-- InsufficientFunds
 +-- InvariantViolation          the database refused something that must never happen (a bug)
 +-- ServiceUnavailable          a dependency (database server) is not reachable
"""

from typing import Any, ClassVar

__all__ = [
    "AppError",
    "ConcurrentUpdate",
    "Conflict",
    "InsufficientFunds",
    "InvalidTransition",
    "InvariantViolation",
    "NotFound",
    "Rejected",
    "ServiceUnavailable",
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
