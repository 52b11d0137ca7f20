"""Rules of users, deposits, top-ups and withdrawals (api.md 3.3, 3.7, 3.8, 5.5, 5.6).

One rule per action, and :meth:`MoneyRules.move_money`, which starts a new movement of money
or takes an open top-up or withdrawal one step on, so that money keeps flowing whatever rules
the engine switched off in an example. Provider calls may run under a fault; webhooks may come
twice or out of order.
"""

from typing import Final

from hypothesis import strategies as st
from hypothesis.stateful import MultipleResults, initialize, multiple, precondition, rule

from tests.model.machine import Fault, ModelMachine, faults, pick
from tests.model.money_actions import (
    CENT,
    HORIZON_TX,
    LINK_FAULTS,
    PAYIN_CANCEL_FAULTS,
    PAYIN_FAULTS,
    PAYOUT_CANCEL_FAULTS,
    PAYOUT_FAULTS,
    WEBHOOK_FAULTS,
    MoneyActions,
)
from tests.model.server import AIRTM_EMAILS
from tests.model.world import USDC

__all__ = ["MoneyRules"]

MAX_USERS: Final = 4
# Open-item steps of move_money, weighted: paying is likelier than giving up.
_TOPUP_STEPS: Final = ("confirm", "confirm", "confirm", "payer_cancel", "payer_fail", "cancel")
_CREATED_STEPS: Final = ("commit", "commit", "cancel")
_COMMITTED_STEPS: Final = ("complete", "complete", "fail")


class MoneyRules(MoneyActions):
    """Users and the money that enters and leaves their balances."""

    @initialize(target=ModelMachine.users)
    def two_users(self) -> MultipleResults[str]:
        """A funded buyer and a seller linked to Airtm, so that every example can trade."""
        buyer = self.new_user("BUYER", None)
        self.do_deposit(self.world.users[buyer], 300 * USDC)
        seller = self.new_user("SELLER", None)
        self.do_link(self.world.users[seller], AIRTM_EMAILS[1], None)
        return multiple(buyer, seller)

    def _email(self, user_id: str) -> str:
        return AIRTM_EMAILS[list(self.world.users).index(user_id)]

    @precondition(lambda self: len(self.world.users) < MAX_USERS)
    @rule(
        target=ModelMachine.users,
        kind=st.sampled_from(["BUYER", "SELLER", "BOTH"]),
        fault=faults(*HORIZON_TX),
    )
    def create_user(self, kind: str, fault: Fault | None) -> str:
        """A user; its wallet is activated on chain in the background (waited for)."""
        return self.new_user(kind, fault)

    @rule(user_id=ModelMachine.users)
    def create_user_again(self, user_id: str) -> None:
        """``POST /users`` is idempotent on ``external_user_id``: 200 and the same user."""
        user = self.world.users[user_id]
        sent = self.act("/users", {"external_user_id": user.external_id})
        assert (sent.status, sent.answer["id"]) == (200, user.id), sent.answer

    @rule(user_id=ModelMachine.users, amount=st.integers(USDC, 250 * USDC))
    def deposit(self, user_id: str, amount: int) -> None:
        """An on-chain deposit to the user's address."""
        self.do_deposit(self.world.users[user_id], amount)

    @rule(user_id=ModelMachine.users, fault=faults(*LINK_FAULTS))
    def link_airtm(self, user_id: str, fault: Fault | None) -> None:
        """Link (or link again) the user's Airtm account."""
        user = self.world.users[user_id]
        self.do_link(user, user.airtm_email or self._email(user_id), fault)

    @rule(user_id=ModelMachine.users, cents=st.integers(100, 20_000), fault=faults(*PAYIN_FAULTS))
    def create_topup(self, user_id: str, cents: int, fault: Fault | None) -> None:
        """A top-up of 1 to 200 USD."""
        self.do_create_topup(user_id, cents * CENT, fault)

    @precondition(lambda self: self.awaiting())
    @rule(
        data=st.data(),
        action=st.sampled_from(["confirm", "confirm", "cancel", "fail"]),
        fault=faults(*WEBHOOK_FAULTS),
    )
    def payer_acts(self, data: st.DataObject, action: str, fault: Fault | None) -> None:
        """The payer of a waiting top-up pays, leaves or fails."""
        topup = self.world.topups[data.draw(st.sampled_from(self.awaiting()))]
        self.do_payer_act(topup, action, fault)

    @precondition(lambda self: self.awaiting())
    @rule(data=st.data(), fault=faults(*PAYIN_CANCEL_FAULTS))
    def cancel_topup(self, data: st.DataObject, fault: Fault | None) -> None:
        """Cancel a waiting top-up."""
        topup = self.world.topups[data.draw(st.sampled_from(self.awaiting()))]
        self.do_cancel_topup(topup, fault)

    @rule(
        user_id=ModelMachine.users, amount=st.integers(USDC, 120 * USDC), fault=faults(*HORIZON_TX)
    )
    def withdraw_crypto(self, user_id: str, amount: int, fault: Fault | None) -> None:
        """A crypto withdrawal (refused above the available balance)."""
        self.do_withdraw_crypto(self.world.users[user_id], amount, fault)

    @rule(
        user_id=ModelMachine.users,
        cents=st.integers(100, 12_000),
        commit=st.booleans(),
        fault=faults(*PAYOUT_FAULTS),
    )
    def withdraw_airtm(self, user_id: str, cents: int, commit: bool, fault: Fault | None) -> None:
        """An Airtm withdrawal (refused without a linked account or the funds)."""
        self.do_withdraw_airtm(self.world.users[user_id], cents * CENT, commit, fault)

    @precondition(lambda self: self.airtm_in("WITHDRAWAL_CREATED"))
    @rule(data=st.data())
    def commit_withdrawal(self, data: st.DataObject) -> None:
        """Commit a created Airtm payout."""
        created = self.airtm_in("WITHDRAWAL_CREATED")
        self.do_commit(self.world.withdrawals[data.draw(st.sampled_from(created))])

    @precondition(lambda self: self.airtm_in("WITHDRAWAL_COMMITTED"))
    @rule(
        data=st.data(),
        action=st.sampled_from(["complete", "complete", "fail"]),
        fault=faults(*WEBHOOK_FAULTS),
    )
    def payout_ends(self, data: st.DataObject, action: str, fault: Fault | None) -> None:
        """A committed payout completes or fails at Airtm."""
        committed = self.airtm_in("WITHDRAWAL_COMMITTED")
        withdrawal = self.world.withdrawals[data.draw(st.sampled_from(committed))]
        self.do_payout_end(withdrawal, action, fault)

    @precondition(lambda self: self.airtm_in("WITHDRAWAL_CREATED"))
    @rule(data=st.data(), fault=faults(*PAYOUT_CANCEL_FAULTS))
    def cancel_withdrawal(self, data: st.DataObject, fault: Fault | None) -> None:
        """Cancel a created Airtm withdrawal."""
        created = self.airtm_in("WITHDRAWAL_CREATED")
        self.do_cancel_withdrawal(
            self.world.withdrawals[data.draw(st.sampled_from(created))], fault
        )

    @precondition(lambda self: self.refused_money_actions())
    @rule(data=st.data())
    def refused_money_action(self, data: st.DataObject) -> None:
        """Cancel a top-up already paid or ended, commit or cancel a withdrawal past it."""
        path, body, refusal = data.draw(st.sampled_from(self.refused_money_actions()))
        self.refused(path, body, *refusal)

    # -- the catch-all -----------------------------------------------------------------------

    def _open_steps(self) -> list[tuple[str, str]]:
        steps = [(t, step) for t in self.awaiting() for step in _TOPUP_STEPS]
        steps += [(w, step) for w in self.airtm_in("WITHDRAWAL_CREATED") for step in _CREATED_STEPS]
        committed = self.airtm_in("WITHDRAWAL_COMMITTED")
        return steps + [(w, step) for w in committed for step in _COMMITTED_STEPS]

    @rule(data=st.data())
    def move_money(self, data: st.DataObject) -> None:
        """Take an open top-up or withdrawal one step on or, now and then, start a new one."""
        steps = self._open_steps()
        if not steps or data.draw(st.integers(0, 2), "new") == 2:
            self._start_movement(data)
            return
        resource_id, step = data.draw(st.sampled_from(steps), "step")
        if resource_id in self.world.topups:
            topup = self.world.topups[resource_id]
            if step == "cancel":
                self.do_cancel_topup(topup, data.draw(faults(*PAYIN_CANCEL_FAULTS)))
            else:
                action = step.removeprefix("payer_")
                self.do_payer_act(topup, action, data.draw(faults(*WEBHOOK_FAULTS)))
            return
        withdrawal = self.world.withdrawals[resource_id]
        if step == "commit":
            self.do_commit(withdrawal)
        elif step == "cancel":
            self.do_cancel_withdrawal(withdrawal, data.draw(faults(*PAYOUT_CANCEL_FAULTS)))
        else:
            self.do_payout_end(withdrawal, step, data.draw(faults(*WEBHOOK_FAULTS)))

    def _start_movement(self, data: st.DataObject) -> None:
        """A deposit, a top-up or a withdrawal of a size the user can mostly afford."""
        users = list(self.world.users)
        kind = data.draw(st.sampled_from(["topup", "airtm", "crypto", "deposit"]), "kind")
        if kind == "deposit":
            user = self.world.users[data.draw(st.sampled_from(users), "user")]
            self.do_deposit(user, data.draw(st.integers(USDC, 250 * USDC), "amount"))
            return
        if kind == "topup":
            amount = data.draw(st.integers(100, 20_000), "cents") * CENT
            self.do_create_topup(
                data.draw(st.sampled_from(users)), amount, data.draw(faults(*PAYIN_FAULTS))
            )
            return
        funded = [u for u in users if self.world.users[u].available >= USDC]
        if kind == "airtm":
            funded = [u for u in funded if self.world.users[u].airtm_email is not None]
        user = self.world.users[pick(data, funded, users)]
        cents = data.draw(st.integers(100, max(100, user.available // CENT)), "cents")
        if kind == "airtm":
            commit = data.draw(st.booleans(), "commit")
            self.do_withdraw_airtm(user, cents * CENT, commit, data.draw(faults(*PAYOUT_FAULTS)))
        else:
            self.do_withdraw_crypto(user, cents * CENT, data.draw(faults(*HORIZON_TX)))
