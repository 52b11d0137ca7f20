"""Rules of orders, escrows, milestones, release, refund and disputes (api.md 3.5, 3.6, 5).

One rule per action, run only when the model has an order (or dispute) that accepts it, and
:meth:`OrderRules.advance_order`, which takes any open order one valid step further: the
hypothesis engine switches rules off at random per example (swarm testing), and this rule keeps
lifecycles reaching their ends whatever is switched off. The refusal rules send an action the
model says must be refused and check the documented code; the invariant after the step proves
that nothing changed. Escrow actions may run under a Trustless Work or Horizon fault.
"""

from typing import Any, Final

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from common.money import format_amount
from tests.model.machine import Fault, ModelMachine, faults, pick
from tests.model.order_actions import ACTIONS, ESCROW_FAULTS, INVALID_STATE, OrderActions
from tests.model.world import USDC, OrderM

__all__ = ["OrderRules"]

_WEIGHTS: Final = {"cancel": 1, "refund": 4, "dispute": 6}


class OrderRules(OrderActions):
    """Orders from creation to closing, and the actions each state refuses."""

    @rule(
        buyer=ModelMachine.users,
        amount=st.integers(100_000, 60 * USDC),
        parts=st.integers(0, 3),
        data=st.data(),
    )
    def create_order(self, buyer: str, amount: int, parts: int, data: st.DataObject) -> None:
        """A new order; its seller is another user but, once in a while, the buyer."""
        others = [user for user in self.world.users if user != buyer]
        self.do_create_order(buyer, pick(data, others, list(self.world.users)), amount, parts, data)

    def _choose(self, data: st.DataObject, action: str) -> OrderM:
        return self.world.orders[data.draw(st.sampled_from(self.ready(action)))]

    @precondition(lambda self: self.ready("reserve"))
    @rule(data=st.data())
    def reserve(self, data: st.DataObject) -> None:
        """Reserve the order amount from the buyer's available balance."""
        self.do_reserve(self._choose(data, "reserve"), data)

    @precondition(lambda self: self.ready("cancel"))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Cancel an order before its escrow."""
        self.do_cancel(self._choose(data, "cancel"))

    @precondition(lambda self: self.ready("escrow"))
    @rule(data=st.data(), fault=faults(*ESCROW_FAULTS))
    def create_escrow(self, data: st.DataObject, fault: Fault | None) -> None:
        """Deploy an order's escrow contract."""
        self.do_escrow(self._choose(data, "escrow"), fault)

    @precondition(lambda self: self.ready("fund"))
    @rule(data=st.data(), fault=faults(*ESCROW_FAULTS))
    def fund(self, data: st.DataObject, fault: Fault | None) -> None:
        """Fund a deployed escrow."""
        self.do_fund(self._choose(data, "fund"), fault)

    @precondition(lambda self: self.open_milestones())
    @rule(data=st.data())
    def complete_milestone(self, data: st.DataObject) -> None:
        """Complete an open milestone of an IN_PROGRESS order."""
        order_id, ref = data.draw(st.sampled_from(self.open_milestones()))
        self.do_complete(self.world.orders[order_id], ref)

    @precondition(lambda self: self.ready("release"))
    @rule(data=st.data(), fault=faults(*ESCROW_FAULTS))
    def release(self, data: st.DataObject, fault: Fault | None) -> None:
        """Release an order whose milestones are all complete."""
        self.do_release(self._choose(data, "release"), fault)

    @precondition(lambda self: self.ready("refund"))
    @rule(data=st.data(), fault=faults(*ESCROW_FAULTS))
    def refund(self, data: st.DataObject, fault: Fault | None) -> None:
        """Refund an IN_PROGRESS order."""
        self.do_refund(self._choose(data, "refund"), fault)

    @precondition(lambda self: self.ready("dispute"))
    @rule(data=st.data())
    def open_dispute(self, data: st.DataObject) -> None:
        """Open a dispute on an IN_PROGRESS order."""
        self.do_dispute(self._choose(data, "dispute"), data)

    @precondition(lambda self: self.disputes_in("OPEN", "UNDER_REVIEW"))
    @rule(data=st.data())
    def assign(self, data: st.DataObject) -> None:
        """Assign (or re-assign) a dispute."""
        dispute_id = data.draw(st.sampled_from(self.disputes_in("OPEN", "UNDER_REVIEW")))
        self.do_assign(self.world.disputes[dispute_id], data)

    @precondition(lambda self: self.disputes_in("UNDER_REVIEW"))
    @rule(data=st.data(), fault=faults(*ESCROW_FAULTS))
    def resolve(self, data: st.DataObject, fault: Fault | None) -> None:
        """Resolve a dispute under review."""
        dispute_id = data.draw(st.sampled_from(self.disputes_in("UNDER_REVIEW")))
        self.do_resolve(self.world.disputes[dispute_id], data, fault)

    def _next_steps(self, order: OrderM) -> list[str]:
        """Every step forward the model accepts now on ``order`` (and its dispute)."""
        steps = [action for action in ACTIONS if self.refusal(action, order) is None]
        steps += [
            f"complete:{ref}" for order_id, ref in self.open_milestones() if order_id == order.id
        ]
        dispute = self.world.disputes.get(order.dispute or "")
        if dispute is not None and dispute.status != "RESOLVED":
            steps.append("resolve" if dispute.status == "UNDER_REVIEW" else "assign")
        return steps

    def _step(self, order: OrderM, action: str, data: st.DataObject) -> None:
        fault = data.draw(faults(*ESCROW_FAULTS), "fault")
        if action in ("assign", "resolve"):
            assert order.dispute is not None
            dispute = self.world.disputes[order.dispute]
            if action == "assign":
                self.do_assign(dispute, data)
            else:
                self.do_resolve(dispute, data, fault)
        elif action.startswith("complete:"):
            self.do_complete(order, action.removeprefix("complete:"))
        elif action in ("escrow", "fund", "release", "refund"):
            getattr(self, f"do_{action}")(order, fault)
        elif action == "cancel":
            self.do_cancel(order)
        else:
            getattr(self, f"do_{action}")(order, data)

    @rule(data=st.data())
    def advance_order(self, data: st.DataObject) -> None:
        """Walk one order up to ten valid steps, checking every invariant after each.

        The order is an open one or, when none is open or once in a while, a new one. The
        engine switches rules off at random per example (swarm testing); this rule keeps
        lifecycles reaching their ends whatever is switched off. With one argument and its
        name, it is also the rule hypothesis's simplest examples repeat.
        """
        open_orders = [o.id for o in self.world.orders.values() if self._next_steps(o)]
        if not open_orders or data.draw(st.integers(0, 3), "new order") == 3:
            users = list(self.world.users)
            # A buyer who can pay, mostly: an order nobody can reserve only gets cancelled.
            funded = [u for u in users if self.world.users[u].available >= USDC]
            buyer = pick(data, funded, users)
            seller = data.draw(st.sampled_from([u for u in users if u != buyer]), "seller")
            most = max(self.world.users[buyer].available // 2, USDC)
            amount = data.draw(st.integers(100_000, min(60 * USDC, most)), "amount")
            order_id = self.do_create_order(
                buyer, seller, amount, data.draw(st.integers(0, 3)), data
            )
            self.the_api_matches_the_model()
        else:
            order_id = data.draw(st.sampled_from(open_orders), "order")
        order = self.world.orders[order_id]
        for _ in range(data.draw(st.integers(1, 10), "steps")):
            choices = self._next_steps(order)
            if not choices:
                return
            # Forward steps weigh more than the ones that end a lifecycle early.
            weighted = [c for c in choices for _ in range(_WEIGHTS.get(c, 8))]
            self._step(order, data.draw(st.sampled_from(weighted), "step"), data)
            self.the_api_matches_the_model()

    # -- refusals ------------------------------------------------------------------------------

    def _refused_order_actions(self) -> list[tuple[str, str, tuple[int, str]]]:
        """(order, action, refusal) of every action the model refuses now."""
        found = []
        for order in self.world.orders.values():
            for action in ACTIONS:
                refusal = self.refusal(action, order)
                if refusal is not None:
                    found.append((order.id, action, refusal))
            if order.status == "ORDER_CREATED":
                found.append((order.id, "reserve_other_amount", (422, "RESERVE_MISMATCH_AMOUNT")))
            found.append((order.id, "complete:nope", (404, "MILESTONE_NOT_FOUND")))
            for ref, status in order.milestones.items():
                if order.status != "IN_PROGRESS" or status != "OPEN":
                    found.append((order.id, f"complete:{ref}", INVALID_STATE))
        return found

    @precondition(lambda self: self.world.orders)
    @rule(data=st.data())
    def refused_order_action(self, data: st.DataObject) -> None:
        """An order action the state refuses: the documented code, and nothing changes."""
        order_id, action, refusal = data.draw(st.sampled_from(self._refused_order_actions()))
        order = self.world.orders[order_id]
        if action.startswith("complete:"):
            path, body = f"milestones/{action.removeprefix('complete:')}/complete", None
        elif action == "reserve_other_amount":
            path, body = "reserve", {"amount": format_amount(order.amount + 1)}
        else:
            path, body = ACTIONS[action]
        self.refused(f"/orders/{order_id}/{path}", body, *refusal)

    def _refused_dispute_actions(self) -> list[tuple[str, str, tuple[int, str]]]:
        """(dispute, action, refusal) of every dispute action the model refuses now."""
        found = []
        for dispute in self.world.disputes.values():
            if dispute.status == "RESOLVED":
                found += [(dispute.id, "assign", INVALID_STATE)]
            if dispute.status != "UNDER_REVIEW":
                found += [(dispute.id, "resolve", INVALID_STATE)]
            else:
                found += [(dispute.id, "bad_split", (400, "INVALID_AMOUNT"))]
        return found

    @precondition(lambda self: self.world.disputes)
    @rule(data=st.data())
    def refused_dispute_action(self, data: st.DataObject) -> None:
        """Assign a RESOLVED dispute, resolve one not under review, or split it in shares
        that do not add up to the escrow (400 INVALID_AMOUNT, never stored)."""
        dispute_id, action, refusal = data.draw(st.sampled_from(self._refused_dispute_actions()))
        order = self.world.orders[self.world.disputes[dispute_id].order_id]
        body: dict[str, Any] = {"assigned_to": "agent-7"}
        if action == "resolve":
            body = {"decision": "FULL_RELEASE"}
        elif action == "bad_split":
            # One stroop too many: the shares must add up to the escrowed amount exactly.
            shares = {"release_amount": format_amount(order.amount), "refund_amount": "0.0000001"}
            body = {"decision": "SPLIT", **shares}
        verb = "assign" if action == "assign" else "resolve"
        self.refused(f"/disputes/{dispute_id}/{verb}", body, *refusal)
