"""How each user, deposit, top-up and withdrawal action is carried out and modelled.

Money enters by an on-chain deposit (the sandbox's outside world pays the user's address and
the deposit monitor credits it) or an Airtm top-up (the payer acts at the sandbox's Airtm, the
signed webhook tells the API, the treasury delivers the USDC on chain); it leaves by a crypto
withdrawal (a payment from the user's wallet) or an Airtm payout. The ``do_*`` methods send an
action (under an optional provider fault), wait for what follows from it and apply it to the
model; the rules of :mod:`tests.model.rules_money` choose what to do.
"""

from typing import Any, Final

from common.money import format_amount
from tests.model.client import wait_until
from tests.model.machine import SETTLE_S, Fault, ModelMachine
from tests.model.world import TopUpM, UserM, WithdrawalM

__all__ = [
    "CENT",
    "HORIZON_TX",
    "LINK_FAULTS",
    "PAYIN_CANCEL_FAULTS",
    "PAYIN_FAULTS",
    "PAYOUT_CANCEL_FAULTS",
    "PAYOUT_FAULTS",
    "WEBHOOK_FAULTS",
    "MoneyActions",
]

CENT: Final = 100_000
_INVALID_STATE: Final = (409, "INVALID_STATE")
_URLS: Final = {"return_url": "https://shop.test/paid", "cancel_url": "https://shop.test/no"}
HORIZON_TX: Final = tuple(
    Fault("horizon", "POST", "/transactions", fault)
    for fault in ("status:503", "status:504", "applied_response_lost", "fail_before_apply")
)


def _airtm(method: str, route: str, *kinds: str) -> tuple[Fault, ...]:
    return tuple(Fault("airtm", method, route, kind) for kind in kinds)


_LOST: Final = ("status:503", "status:429", "applied_response_lost", "fail_before_apply")
PAYIN_FAULTS: Final = _airtm("POST", "/payins", *_LOST)
PAYOUT_FAULTS: Final = _airtm("POST", "/payouts", *_LOST)
_CANCEL: Final = ("status:503", "applied_response_lost")
PAYIN_CANCEL_FAULTS: Final = _airtm("DELETE", "/payins", *_CANCEL)
PAYOUT_CANCEL_FAULTS: Final = _airtm("DELETE", "/payouts", *_CANCEL)
LINK_FAULTS: Final = _airtm("GET", "/users", "status:503", "latency_ms:150")
WEBHOOK_FAULTS: Final = (
    *_airtm("WEBHOOK", "payin.", "duplicate_webhook", "reorder_webhooks"),
    *_airtm("WEBHOOK", "payout.", "duplicate_webhook", "reorder_webhooks"),
)
_TOPUP_END: Final = {
    "confirm": "TOPUP_SUCCEEDED",
    "cancel": "TOPUP_CANCELED",
    "fail": "TOPUP_FAILED",
}
_PAYOUT_END: Final = {"complete": "WITHDRAWAL_COMPLETED", "fail": "WITHDRAWAL_FAILED"}


class MoneyActions(ModelMachine):
    """The model of money in and out, and the execution of each action."""

    def awaiting(self) -> list[str]:
        """Top-ups whose payer has not acted yet, in creation order."""
        return [
            t.id
            for t in self.world.topups.values()
            if t.status == "TOPUP_AWAITING_USER_CONFIRMATION"
        ]

    def airtm_in(self, status: str) -> list[str]:
        """Airtm withdrawals in ``status``, in creation order."""
        return [
            w.id
            for w in self.world.withdrawals.values()
            if w.kind == "airtm_balance" and w.status == status
        ]

    # -- users and deposits ----------------------------------------------------------------------

    def new_user(self, kind: str, fault: Fault | None) -> str:
        """A user; its wallet is activated on chain in the background (waited for)."""
        external_id = f"user-{len(self.world.users) + 1}"
        sent = self.act("/users", {"external_user_id": external_id, "type": kind}, fault=fault)
        assert sent.status == 201, sent.answer
        user = UserM(sent.answer["id"], external_id, sent.answer["wallet"]["public_key"])
        self.world.users[user.id] = user
        wait_until(
            lambda: self.client.get(f"/users/{user.id}/wallet"),
            lambda wallet: wallet["is_active"] and wallet["trustline_ready"],
            SETTLE_S,
            f"wallet of {external_id}",
        )
        return user.id

    def do_deposit(self, user: UserM, amount: int) -> None:
        """USDC from the outside world to the user's address; the monitor credits it once."""
        body = {"address": user.address, "amount": format_amount(amount)}
        paid = self.client.control("POST", "/deposits", body)
        assert paid.status_code == 200, paid.text
        self.world.deposit(user, amount)
        wait_until(
            lambda: self.client.get(f"/users/{user.id}/balance")["available"],
            lambda available: available == format_amount(user.available),
            SETTLE_S,
            f"the deposit to {user.external_id}",
        )

    def do_link(self, user: UserM, email: str, fault: Fault | None) -> None:
        """Link the user's Airtm account (linking the same one again changes nothing)."""
        sent = self.act(f"/users/{user.id}/airtm/link", {"email": email}, fault=fault)
        assert (sent.status, sent.answer["airtm_email"]) == (200, email), sent.answer
        user.airtm_email = email

    # -- top-ups ---------------------------------------------------------------------------------

    def do_create_topup(self, user_id: str, amount: int, fault: Fault | None) -> None:
        """A payin at Airtm: TOPUP_AWAITING_USER_CONFIRMATION (refreshed if Airtm was down)."""
        body = {"user_id": user_id, "amount": format_amount(amount), **_URLS}
        sent = self.act("/topups", body, fault=fault)
        topup_id, answer = sent.answer["id"], sent.answer
        # Airtm unreachable: the top-up stays TOPUP_CREATED until a refresh creates the payin.
        for _ in range(5):
            if answer["status"] != "TOPUP_CREATED":
                break
            # Not kept for replays: how many refreshes it takes depends on timing, and what
            # the rules draw must not.
            refreshed = self.client.send(f"/topups/{topup_id}/refresh")
            assert refreshed.status == 200, refreshed
            answer = refreshed.answer
        assert answer["status"] == "TOPUP_AWAITING_USER_CONFIRMATION", answer
        topup = TopUpM(topup_id, user_id, amount, answer["status"], answer["airtm_payin_id"])
        self.world.topups[topup.id] = topup

    def do_payer_act(self, topup: TopUpM, action: str, fault: Fault | None) -> None:
        """The payer pays, leaves or fails at Airtm; the signed webhook moves the top-up."""
        if fault is not None:
            self.arm_fault(fault)
        done = self.client.control("POST", f"/airtm/payins/{topup.payin_id}/{action}")
        assert done.status_code == 200, done.text
        status = _TOPUP_END[action]
        self.resource_in(f"/topups/{topup.id}", {status}, f"top-up {topup.id} {status}", trace=True)
        if action != "confirm":
            topup.status = status
            return
        self.world.topup_succeeded(topup)
        user = self.world.users[topup.user]
        self.wallet_holds(user.address, user.wallet)

    def do_cancel_topup(self, topup: TopUpM, fault: Fault | None) -> None:
        """Cancel while the payer has not paid (the payin is cancelled at Airtm first)."""
        path = f"/topups/{topup.id}"
        self.act(f"{path}/cancel", {"reason": "model"}, fault=fault, reached="TOPUP_CANCELED")
        topup.status = "TOPUP_CANCELED"
        assert self.client.get(path)["status"] == topup.status

    # -- withdrawals -----------------------------------------------------------------------------

    def do_withdraw_crypto(self, user: UserM, amount: int, fault: Fault | None) -> None:
        """A USDC payment from the user's wallet to an outside account: COMPLETED (or 422)."""
        body = {
            "user_id": user.id,
            "amount": format_amount(amount),
            "destination_type": "crypto",
            "destination_ref": self.server.destination,
        }
        if amount > user.available:
            self.refused("/withdrawals", body, 422, "INSUFFICIENT_FUNDS")
            return
        sent = self.act("/withdrawals", body, fault=fault)
        withdrawal = WithdrawalM(sent.answer["id"], user.id, amount, "crypto", "")
        self.world.withdrawal_created(withdrawal)
        self.world.withdrawal_ended(withdrawal, "WITHDRAWAL_COMPLETED")
        path = f"/withdrawals/{withdrawal.id}"
        self.resource_in(path, {withdrawal.status}, f"withdrawal {withdrawal.id}")

    def do_withdraw_airtm(
        self, user: UserM, amount: int, commit: bool, fault: Fault | None
    ) -> None:
        """An Airtm payout to the linked account: CREATED, or COMMITTED with ``commit``."""
        body = {
            "user_id": user.id,
            "amount": format_amount(amount),
            "destination_type": "airtm_balance",
            "commit": commit,
        }
        if user.airtm_email is None:
            self.refused("/withdrawals", body, 422, "AIRTM_USER_NOT_LINKED")
            return
        if amount > user.available:
            self.refused("/withdrawals", body, 422, "INSUFFICIENT_FUNDS")
            return
        sent = self.act("/withdrawals", body, fault=fault)
        status = "WITHDRAWAL_COMMITTED" if commit else "WITHDRAWAL_CREATED"
        withdrawal = WithdrawalM(sent.answer["id"], user.id, amount, "airtm_balance", status)
        self.world.withdrawal_created(withdrawal)
        found = wait_until(
            lambda: self.client.get(f"/withdrawals/{withdrawal.id}"),
            lambda w: w["status"] == status and w["airtm_payout_id"] is not None,
            SETTLE_S,
            f"withdrawal {withdrawal.id} {status}",
        )
        withdrawal.payout_id = found["airtm_payout_id"]

    def do_commit(self, withdrawal: WithdrawalM) -> None:
        """Commit a created Airtm payout."""
        self.act(f"/withdrawals/{withdrawal.id}/commit")
        withdrawal.status = "WITHDRAWAL_COMMITTED"
        path = f"/withdrawals/{withdrawal.id}"
        self.resource_in(path, {withdrawal.status}, f"withdrawal {withdrawal.id} committed")

    def do_payout_end(self, withdrawal: WithdrawalM, action: str, fault: Fault | None) -> None:
        """Airtm pays the recipient or gives up; the webhook ends the withdrawal."""
        payout_id = withdrawal.payout_id
        assert payout_id is not None
        # The row says COMMITTED at once; Airtm pays only once the commit reached it (a fault
        # on the way delays that by a backoff).
        wait_until(
            lambda: self.server.payout_status(payout_id),
            lambda status: status == "COMMITTED",
            SETTLE_S,
            f"payout {payout_id} committed at Airtm",
        )
        if fault is not None:
            self.arm_fault(fault)
        done = self.client.control("POST", f"/airtm/payouts/{payout_id}/{action}")
        assert done.status_code == 200, done.text
        status = _PAYOUT_END[action]
        path = f"/withdrawals/{withdrawal.id}"
        self.resource_in(path, {status}, f"{withdrawal.id} {status}", trace=True)
        self.world.withdrawal_ended(withdrawal, status)

    def do_cancel_withdrawal(self, withdrawal: WithdrawalM, fault: Fault | None) -> None:
        """Cancel a withdrawal not committed yet: the payout is cancelled, the hold voided."""
        path, canceled = f"/withdrawals/{withdrawal.id}", "WITHDRAWAL_CANCELED"
        self.act(f"{path}/cancel", {"reason": "model"}, fault=fault, reached=canceled)
        self.world.withdrawal_ended(withdrawal, canceled)
        assert self.client.get(path)["status"] == canceled

    def refused_money_actions(self) -> list[tuple[str, Any, tuple[int, str]]]:
        """(path, body, refusal) of every top-up and withdrawal action refused now."""
        found: list[tuple[str, Any, tuple[int, str]]] = []
        for topup in self.world.topups.values():
            if topup.status != "TOPUP_AWAITING_USER_CONFIRMATION":
                found.append((f"/topups/{topup.id}/cancel", None, _INVALID_STATE))
        for withdrawal in self.world.withdrawals.values():
            path = f"/withdrawals/{withdrawal.id}"
            if withdrawal.kind == "crypto" or withdrawal.status != "WITHDRAWAL_CREATED":
                found.append((f"{path}/commit", None, (409, "WITHDRAWAL_NOT_COMMITTABLE")))
            if withdrawal.status != "WITHDRAWAL_CREATED":
                found.append((f"{path}/cancel", {"reason": "late"}, _INVALID_STATE))
        return found
