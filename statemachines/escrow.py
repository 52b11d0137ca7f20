"""Escrow lifecycle (api.md 5.2): the on-chain Trustless Work contract behind an order.

Reconciliation never fires these events: a mismatch with the chain becomes an ``ESCROW_STATE``
item for a person to look at, so only confirmed provider outcomes move an escrow.
"""

from typing import Final

from statemachine.states import States

from statemachines.base import StrictMachine, transition_table
from statemachines.status import EscrowStatus

__all__ = ["TRANSITIONS", "EscrowMachine"]


class EscrowMachine(StrictMachine):
    """Escrow: deploy, fund, then release, refund or dispute the contract.

    Bind it to a row with ``EscrowMachine(model=row, state_field="status")``. ``FAILED`` is
    terminal; after a rejected deploy the order creates a new escrow rather than retrying this one.
    """

    _ = States.from_enum(
        EscrowStatus,
        initial=EscrowStatus.CREATING,
        final=[EscrowStatus.RELEASED, EscrowStatus.REFUNDED, EscrowStatus.FAILED],
    )

    confirm_deploy = _.CREATING.to(_.CREATED)
    reject_deploy = _.CREATING.to(_.FAILED)
    fund = _.CREATED.to(_.FUNDING)
    confirm_funding = _.FUNDING.to(_.FUNDED)
    # A rejected funding leaves a deployed, empty contract that can be funded again.
    reject_funding = _.FUNDING.to(_.CREATED)
    release = _.FUNDED.to(_.RELEASING)
    refund = _.FUNDED.to(_.REFUNDING)
    open_dispute = _.FUNDED.to(_.DISPUTED)
    confirm_release = _.RELEASING.to(_.RELEASED)
    # Trustless Work has no plain refund: it is a dispute resolution paying 100 % to the buyer.
    confirm_refund = _.REFUNDING.to(_.REFUNDED)
    resolve_full_release = _.DISPUTED.to(_.RELEASED)
    # A split pays the seller something, so the contract ends RELEASED rather than REFUNDED.
    resolve_split = _.DISPUTED.to(_.RELEASED)
    resolve_full_refund = _.DISPUTED.to(_.REFUNDED)


TRANSITIONS: Final[dict[tuple[EscrowStatus, str], EscrowStatus]] = transition_table(
    EscrowMachine, EscrowStatus
)
"""Every allowed ``(status, event)`` of an escrow and the status it leads to."""
