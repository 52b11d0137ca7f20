"""What the model says of each order and dispute action, and how each one is carried out.

:meth:`OrderActions.refusal` is the model of api.md 5 with the precedence of api.md 2 (an open
dispute before the state, an existing escrow before the state, ...): the documented error an
action must get on an order now, or ``None`` when it must succeed. The ``do_*`` methods send
an action the model accepts (under an optional provider fault), wait for its background work
and apply it to the model; the rules of :mod:`tests.model.rules_orders` choose what to do.
"""

from typing import Any, Final

from hypothesis import strategies as st

from common.money import format_amount
from tests.model.machine import Fault, ModelMachine
from tests.model.world import DisputeM, OrderM

__all__ = ["ACTIONS", "CLOSE_REASONS", "ESCROW_FAULTS", "INVALID_STATE", "OrderActions"]

_TW: Final = "trustless_work"
_SEND: Final = "/helper/send-transaction"
# Faults of the calls escrow operations make: Trustless Work builds and sends, Horizon reads.
ESCROW_FAULTS: Final = (
    Fault(_TW, "POST", _SEND, "status:500"),
    Fault(_TW, "POST", _SEND, "status:429"),
    Fault(_TW, "POST", _SEND, "applied_response_lost"),
    Fault(_TW, "POST", _SEND, "fail_before_apply"),
    Fault(_TW, "POST", "/", "status:503"),
    Fault(_TW, "*", "/", "latency_ms:150"),
    Fault("horizon", "GET", "/transactions", "status:503"),
)
INVALID_STATE: Final = (409, "INVALID_STATE")
CLOSE_REASONS: Final = {"FULL_RELEASE": "RELEASED", "FULL_REFUND": "REFUNDED", "SPLIT": "SPLIT"}
# action -> (path under the order, the body a refused attempt sends)
# (Forward steps first: hypothesis's simplest draws pick the first, and walk a lifecycle.)
ACTIONS: Final[dict[str, tuple[str, Any]]] = {
    "reserve": ("reserve", None),
    "escrow": ("escrow", None),
    "fund": ("escrow/fund", None),
    "release": ("resolution/release", {"reason": "done"}),
    "refund": ("resolution/refund", {"reason": "not needed"}),
    "dispute": ("resolution/dispute", {"opened_by": "BUYER", "reason": "QUALITY_ISSUE"}),
    "cancel": ("cancel", {"reason": "model"}),
}


class OrderActions(ModelMachine):
    """The model of order and dispute actions, and their execution."""

    def _unresolved_dispute(self, order: OrderM) -> bool:
        return order.dispute is not None and self.world.disputes[order.dispute].status != "RESOLVED"

    def refusal(self, action: str, order: OrderM) -> tuple[int, str] | None:
        """The documented refusal of ``action`` on ``order`` now, or None if it must succeed."""
        status = order.status
        if action == "reserve":
            if status != "ORDER_CREATED":
                return INVALID_STATE
            if self.world.users[order.buyer].available < order.amount:
                return (422, "INSUFFICIENT_FUNDS")
            return None
        if action == "cancel":
            return None if status in ("ORDER_CREATED", "FUNDS_RESERVED") else INVALID_STATE
        if action == "escrow":
            if order.escrow is not None:
                return (409, "ESCROW_ALREADY_EXISTS")
            return None if status == "FUNDS_RESERVED" else INVALID_STATE
        if action == "fund":
            if order.escrow is None:
                return (404, "ESCROW_NOT_FOUND")
            if order.escrow == "FUNDED":
                return (409, "ESCROW_ALREADY_FUNDED")
            return None if status == "ESCROW_FUNDING" else INVALID_STATE
        if self._unresolved_dispute(order):
            return (409, "DISPUTE_ALREADY_OPEN")
        if status != "IN_PROGRESS":
            return INVALID_STATE
        if action == "release" and "OPEN" in order.milestones.values():
            return INVALID_STATE
        return None

    def ready(self, action: str) -> list[str]:
        """Orders that accept ``action`` now, in creation order."""
        orders = self.world.orders.values()
        return [o.id for o in orders if self.refusal(action, o) is None]

    def open_milestones(self) -> list[tuple[str, str]]:
        """(order, milestone ref) of every milestone that may be completed now."""
        return [
            (o.id, ref)
            for o in self.world.orders.values()
            if o.status == "IN_PROGRESS"
            for ref, status in o.milestones.items()
            if status == "OPEN"
        ]

    def disputes_in(self, *statuses: str) -> list[str]:
        """Disputes in one of ``statuses``, in creation order."""
        return [d.id for d in self.world.disputes.values() if d.status in statuses]

    def _check(self, order: OrderM, answer: dict[str, Any]) -> None:
        """The order the API answered, as the model has it."""
        escrow = answer["escrow"]
        escrow_status = None if escrow is None else escrow["status"]
        seen = (answer["status"], escrow_status, answer["close_reason"])
        assert seen == (order.status, order.escrow, order.close_reason), answer

    # -- carrying actions out ------------------------------------------------------------------

    def do_create_order(
        self, buyer: str, seller: str, amount: int, parts: int, data: st.DataObject
    ) -> str:
        """A new order with up to three milestones adding up to its amount; its id.

        With ``buyer`` as the seller it must be refused (400 INVALID_REQUEST, "" returned).
        """
        body: dict[str, Any] = {
            "buyer_id": buyer,
            "seller_id": seller,
            "amount": format_amount(amount),
            "title": f"Order {len(self.world.orders) + 1}",
        }
        cuts: list[int] = []
        if parts > 1:
            cuts = data.draw(st.lists(st.integers(1, amount - 1), max_size=parts - 1), "cuts")
        bounds = [0, *sorted(set(cuts)), amount]
        milestones = {f"m{n}": bounds[n + 1] - bounds[n] for n in range(len(bounds) - 1)}
        if parts:
            body["milestones"] = [
                {"milestone_ref": ref, "title": ref.upper(), "amount": format_amount(part)}
                for ref, part in milestones.items()
            ]
        if buyer == seller:
            self.refused("/orders", body, 400, "INVALID_REQUEST")
            return ""
        sent = self.act("/orders", body)
        assert (sent.status, sent.answer["status"]) == (201, "ORDER_CREATED"), sent.answer
        refs = dict.fromkeys(milestones, "OPEN") if parts else {}
        order = OrderM(sent.answer["id"], buyer, seller, amount, refs)
        self.world.orders[order.id] = order
        return order.id

    def do_reserve(self, order: OrderM, data: st.DataObject) -> None:
        """Reserve the order amount (the optional ``amount`` sent, or left out)."""
        with_amount = data.draw(st.booleans(), "with amount")
        body = {"amount": format_amount(order.amount)} if with_amount else None
        sent = self.act(f"/orders/{order.id}/reserve", body)
        self.world.reserve(order)
        self._check(order, sent.answer)

    def do_cancel(self, order: OrderM) -> None:
        """Cancel before the escrow: the reservation, if any, is voided."""
        sent = self.act(f"/orders/{order.id}/cancel", {"reason": "changed mind"})
        self.world.cancel(order)
        self._check(order, sent.answer)

    def do_escrow(self, order: OrderM, fault: Fault | None) -> None:
        """Deploy the contract: order ESCROW_FUNDING, escrow CREATED."""
        self.act(f"/orders/{order.id}/escrow", fault=fault)
        order.status, order.escrow = "ESCROW_FUNDING", "CREATED"
        self._check(order, self.settled_order(order.id))

    def do_fund(self, order: OrderM, fault: Fault | None) -> None:
        """Fund the contract from the buyer's wallet: IN_PROGRESS, reservation posted."""
        self.act(f"/orders/{order.id}/escrow/fund", fault=fault)
        self.world.fund(order)
        self._check(order, self.settled_order(order.id))

    def do_complete(self, order: OrderM, ref: str) -> None:
        """Mark a milestone done (recorded locally, approved on chain at the release)."""
        sent = self.act(f"/orders/{order.id}/milestones/{ref}/complete")
        order.milestones[ref] = "COMPLETED"
        assert sent.answer["status"] == "COMPLETED", sent.answer

    def do_release(self, order: OrderM, fault: Fault | None) -> None:
        """Release the whole escrow to the seller, net of fees; CLOSED (RELEASED)."""
        self.act(f"/orders/{order.id}/resolution/release", {"reason": "done"}, fault=fault)
        self.world.settle(order, order.amount, 0, "RELEASED")
        self._check(order, self.settled_order(order.id))

    def do_refund(self, order: OrderM, fault: Fault | None) -> None:
        """Refund through dispute + resolve on chain: the buyer gets it back net of fees."""
        self.act(f"/orders/{order.id}/resolution/refund", {"reason": "late"}, fault=fault)
        self.world.settle(order, 0, order.amount, "REFUNDED")
        self._check(order, self.settled_order(order.id))

    def do_dispute(self, order: OrderM, data: st.DataObject) -> None:
        """Freeze an IN_PROGRESS order: order and escrow DISPUTED, a dispute OPEN."""
        opened_by = data.draw(st.sampled_from(["BUYER", "SELLER"]), "opened by")
        reason = data.draw(st.sampled_from(["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"]), "reason")
        body = {"opened_by": opened_by, "reason": reason, "evidence": ["chat log"]}
        sent = self.act(f"/orders/{order.id}/resolution/dispute", body)
        assert (sent.status, sent.answer["status"]) == (201, "OPEN"), sent.answer
        dispute = DisputeM(sent.answer["id"], order.id)
        self.world.disputes[dispute.id] = dispute
        order.status, order.escrow, order.dispute = "DISPUTED", "DISPUTED", dispute.id

    def do_assign(self, dispute: DisputeM, data: st.DataObject) -> None:
        """OPEN -> UNDER_REVIEW, or a re-assignment."""
        agent = data.draw(st.sampled_from(["agent-7", "agent-9"]), "agent")
        sent = self.act(f"/disputes/{dispute.id}/assign", {"assigned_to": agent})
        dispute.status = "UNDER_REVIEW"
        assert (sent.answer["status"], sent.answer["assigned_to"]) == (dispute.status, agent)

    def do_resolve(self, dispute: DisputeM, data: st.DataObject, fault: Fault | None) -> None:
        """Distribute the escrow: all to the seller, all to the buyer, or split (fees pro rata)."""
        order = self.world.orders[dispute.order_id]
        decision = data.draw(st.sampled_from(list(CLOSE_REASONS)), "decision")
        release = {"FULL_RELEASE": order.amount, "FULL_REFUND": 0}.get(decision)
        body: dict[str, Any] = {"decision": decision, "note": "model"}
        if release is None:
            release = data.draw(st.integers(1, order.amount - 1), "release")
            body |= {
                "release_amount": format_amount(release),
                "refund_amount": format_amount(order.amount - release),
            }
        self.act(f"/disputes/{dispute.id}/resolve", body, fault=fault)
        self.world.settle(order, release, order.amount - release, CLOSE_REASONS[decision])
        dispute.status = "RESOLVED"
        self.resource_in(f"/disputes/{dispute.id}", {"RESOLVED"}, f"dispute {dispute.id}")
        self._check(order, self.settled_order(order.id))
