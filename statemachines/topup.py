"""Top-up lifecycle (api.md 5.5): an Airtm payin that credits the user's balance.

The user's ``cancel`` and the provider's ``cancel_by_provider`` are separate events because
their windows differ: a user may cancel before Airtm starts processing, while Airtm may still
cancel a payin it is processing. One event would let the API accept a cancel it must refuse.
"""

from typing import Final

from statemachine.states import States

from statemachines.base import StrictMachine, transition_table
from statemachines.status import TopUpStatus

__all__ = ["TRANSITIONS", "TopUpMachine"]


class TopUpMachine(StrictMachine):
    """Top-up: create the payin, wait for the user, then succeed, fail or be canceled.

    Bind it to a row with ``TopUpMachine(model=row, state_field="status")``. Terminal states
    take no event; the flow stores and ignores later provider news about them (api.md 5.5).
    """

    _ = States.from_enum(
        TopUpStatus,
        initial=TopUpStatus.TOPUP_CREATED,
        final=[TopUpStatus.TOPUP_SUCCEEDED, TopUpStatus.TOPUP_FAILED, TopUpStatus.TOPUP_CANCELED],
    )

    await_confirmation = _.TOPUP_CREATED.to(_.TOPUP_AWAITING_USER_CONFIRMATION)
    process = _.TOPUP_AWAITING_USER_CONFIRMATION.to(_.TOPUP_PROCESSING)
    # A confirmation may skip PROCESSING: Airtm does not always report the intermediate status.
    confirm = _.TOPUP_AWAITING_USER_CONFIRMATION.to(_.TOPUP_SUCCEEDED) | _.TOPUP_PROCESSING.to(
        _.TOPUP_SUCCEEDED
    )
    # From TOPUP_CREATED this is the payin creation being rejected; later, payin.failed.
    fail = (
        _.TOPUP_CREATED.to(_.TOPUP_FAILED)
        | _.TOPUP_AWAITING_USER_CONFIRMATION.to(_.TOPUP_FAILED)
        | _.TOPUP_PROCESSING.to(_.TOPUP_FAILED)
    )
    cancel = _.TOPUP_CREATED.to(_.TOPUP_CANCELED) | _.TOPUP_AWAITING_USER_CONFIRMATION.to(
        _.TOPUP_CANCELED
    )
    # payin.canceled, BRIDGE_CANCELED or payin expiry.
    cancel_by_provider = _.TOPUP_AWAITING_USER_CONFIRMATION.to(
        _.TOPUP_CANCELED
    ) | _.TOPUP_PROCESSING.to(_.TOPUP_CANCELED)


TRANSITIONS: Final[dict[tuple[TopUpStatus, str], TopUpStatus]] = transition_table(
    TopUpMachine, TopUpStatus
)
"""Every allowed ``(status, event)`` of a top-up and the status it leads to."""
