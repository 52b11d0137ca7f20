"""Withdrawal lifecycle (api.md 5.6): a payout to a Stellar address or an Airtm balance.

As for top-ups, the user's ``cancel`` and the provider's ``cancel_by_provider`` are separate
events: the user may cancel only before commit or while Airtm waits on the recipient, while
Airtm may cancel a committed payout at any non-terminal point.
"""

from typing import Final

from statemachine.states import States

from statemachines.base import StrictMachine, transition_table
from statemachines.status import WithdrawalStatus

__all__ = ["TRANSITIONS", "WithdrawalMachine"]


class WithdrawalMachine(StrictMachine):
    """Withdrawal: commit the held funds, send them, then complete, fail or be canceled.

    Bind it to a row with ``WithdrawalMachine(model=row, state_field="status")``. An ambiguous
    Stellar submission has no event of its own: the row stays ``WITHDRAWAL_PENDING`` until
    Horizon answers, and funds are never returned on a guess.
    """

    _ = States.from_enum(
        WithdrawalStatus,
        initial=WithdrawalStatus.WITHDRAWAL_CREATED,
        final=[
            WithdrawalStatus.WITHDRAWAL_COMPLETED,
            WithdrawalStatus.WITHDRAWAL_FAILED,
            WithdrawalStatus.WITHDRAWAL_CANCELED,
        ],
    )

    commit = _.WITHDRAWAL_CREATED.to(_.WITHDRAWAL_COMMITTED)
    # Stellar transaction submitted or Airtm PROCESSING; also the recipient having acted.
    process = _.WITHDRAWAL_COMMITTED.to(_.WITHDRAWAL_PENDING) | _.WITHDRAWAL_PENDING_USER_ACTION.to(
        _.WITHDRAWAL_PENDING
    )
    require_user_action = _.WITHDRAWAL_COMMITTED.to(
        _.WITHDRAWAL_PENDING_USER_ACTION
    ) | _.WITHDRAWAL_PENDING.to(_.WITHDRAWAL_PENDING_USER_ACTION)
    # A closed Stellar ledger may confirm a transaction before we recorded its submission.
    complete = (
        _.WITHDRAWAL_COMMITTED.to(_.WITHDRAWAL_COMPLETED)
        | _.WITHDRAWAL_PENDING.to(_.WITHDRAWAL_COMPLETED)
        | _.WITHDRAWAL_PENDING_USER_ACTION.to(_.WITHDRAWAL_COMPLETED)
    )
    # From WITHDRAWAL_CREATED this is the payout creation being rejected; later, a failure.
    fail = (
        _.WITHDRAWAL_CREATED.to(_.WITHDRAWAL_FAILED)
        | _.WITHDRAWAL_COMMITTED.to(_.WITHDRAWAL_FAILED)
        | _.WITHDRAWAL_PENDING.to(_.WITHDRAWAL_FAILED)
        | _.WITHDRAWAL_PENDING_USER_ACTION.to(_.WITHDRAWAL_FAILED)
    )
    cancel = _.WITHDRAWAL_CREATED.to(_.WITHDRAWAL_CANCELED) | _.WITHDRAWAL_PENDING_USER_ACTION.to(
        _.WITHDRAWAL_CANCELED
    )
    # payout.canceled, e.g. Airtm's auto-cancel of a payout the recipient never claimed.
    cancel_by_provider = (
        _.WITHDRAWAL_COMMITTED.to(_.WITHDRAWAL_CANCELED)
        | _.WITHDRAWAL_PENDING.to(_.WITHDRAWAL_CANCELED)
        | _.WITHDRAWAL_PENDING_USER_ACTION.to(_.WITHDRAWAL_CANCELED)
    )


TRANSITIONS: Final[dict[tuple[WithdrawalStatus, str], WithdrawalStatus]] = transition_table(
    WithdrawalMachine, WithdrawalStatus
)
"""Every allowed ``(status, event)`` of a withdrawal and the status it leads to."""
