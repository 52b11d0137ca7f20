"""The base of the model's state machine: set-up, how an action is sent, settling, invariants.

A :class:`ModelMachine` is one hypothesis example: a fresh marketplace on the shared live
server (so examples never see each other's resources), its treasury funded, and an empty
:class:`~tests.model.world.World`. Actions go through :meth:`ModelMachine.act` (the expected
success, possibly under an injected provider fault) or :meth:`ModelMachine.refused` (the
documented error, and nothing else changes: the invariant after the step proves it). Every
stored answer is kept for the replay rule.
"""

import time
from dataclasses import dataclass
from typing import Any, Final

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant

from common.money import format_amount
from tests.model.checks import check_all
from tests.model.client import PROVIDER_CODES, Client, Sent, wait_until
from tests.model.server import LiveServer
from tests.model.world import USDC, World

__all__ = ["SETTLE_S", "TREASURY", "Fault", "ModelMachine", "faults", "pick"]

# USDC booked to the treasury per example, enough for every top-up delivery it can make.
TREASURY: Final = 100_000 * USDC
# Bounds of the waits for background work (a fault costs a backoff of about 1-2 s).
SETTLE_S: Final = 45.0
_RETRIES: Final = 8
# Answers the idempotency layer stores, hence replays (api.md 1.8).
_STORED: Final = frozenset({200, 201, 202, 404, 409, 422})


@dataclass(frozen=True)
class Fault:
    """A sandbox fault rule (providers.md 5.7), armed for the next matching call."""

    service: str
    method: str
    route: str
    fault: str

    def __repr__(self) -> str:
        return f"Fault({self.service} {self.method} {self.route} {self.fault})"


def faults(*rules: Fault) -> st.SearchStrategy[Fault | None]:
    """No fault two times out of three, else one of ``rules``."""
    return st.one_of(st.none(), st.none(), st.sampled_from(rules))


def pick(data: st.DataObject, preferred: list[str], every: list[str]) -> str:
    """Mostly one of ``preferred``, sometimes any of ``every``.

    Lists are in creation order, never sorted by id: ids are random, and a draw must mean the
    same resource when hypothesis replays the example.
    """
    if preferred and (len(preferred) == len(every) or data.draw(st.integers(0, 4), "bias")):
        return data.draw(st.sampled_from(preferred))
    return data.draw(st.sampled_from(every))


class ModelMachine(RuleBasedStateMachine):
    """One marketplace driven over HTTP and the model it must follow."""

    # Ids of the users created so far (the rules of both mixins draw from it).
    users = Bundle("users")

    def __init__(self, server: LiveServer) -> None:
        super().__init__()
        self.server = server
        self.client = Client(server.api_url, server.control_url)
        self.disarm_faults()  # what an example that failed may have left
        marketplace_id = self.client.new_marketplace()
        server.fund_treasury(marketplace_id, TREASURY)
        self.world = World(treasury_funded=TREASURY)
        self.sent: list[Sent] = []

    def teardown(self) -> None:
        """Close the client (the marketplace stays; the next example makes its own)."""
        self.client.close()

    @invariant()
    def the_api_matches_the_model(self) -> None:
        """Balances, states, wallets, books and reconciliation, after every step.

        A fault the step armed and nothing met is disarmed first: faults never outlive the
        step that chose them.
        """
        self.disarm_faults()
        check_all(self.client, self.world)

    # -- sending actions ---------------------------------------------------------------------

    def arm_fault(self, fault: Fault) -> None:
        """Arm ``fault`` in the sandbox for the next matching call."""
        body = {
            "service": fault.service,
            "method": fault.method,
            "route": fault.route,
            "fault": fault.fault,
        }
        armed = self.client.control("POST", "/faults", body)
        assert armed.status_code == 200, armed.text

    def disarm_faults(self) -> None:
        """Disarm every fault rule."""
        cleared = self.client.control("DELETE", "/faults")
        assert cleared.status_code == 204, cleared.text

    def _keep(self, sent: Sent) -> Sent:
        """Remember an answer the idempotency layer stored, for the replay rules."""
        if sent.status in _STORED:
            self.sent.append(sent)
        return sent

    def act(
        self,
        path: str,
        body: Any = None,
        *,
        fault: Fault | None = None,
        reached: str | None = None,
    ) -> Sent:
        """POST an action that must succeed (2xx), with ``fault`` armed for its provider call.

        The fault stays armed until the step ends (the action's background work may be what
        meets it). Under a fault the answer may be a provider error (502/503/504, never a
        500): it was not stored, so the same Idempotency-Key runs the action again, as a
        client retries. When the provider applied the first attempt and only its answer was
        lost, the provider's webhook may have moved the resource on before the retry: the
        retry then finds it ``reached`` (409 INVALID_STATE with that ``current_state``), which
        the caller reads back from the resource.
        """
        if fault is not None:
            self.arm_fault(fault)
        sent = self.client.send(path, body)
        for _ in range(_RETRIES):
            if sent.status < 500:
                break
            assert fault is not None, f"POST {path}: {sent.status} {sent.answer}"
            assert sent.status in (502, 503, 504), sent.answer
            assert sent.answer["error"]["code"] in PROVIDER_CODES, sent.answer
            self.disarm_faults()
            time.sleep(0.2)
            sent = self.client.send(path, body, idem=sent.key)
            if sent.status == 409 and reached is not None:
                error = sent.answer["error"]
                assert error["code"] == "INVALID_STATE", sent.answer
                assert error["details"]["current_state"] == reached, sent.answer
                return self._keep(sent)
        assert sent.status in (200, 201, 202), f"POST {path}: {sent.status} {sent.answer}"
        return self._keep(sent)

    def refused(self, path: str, body: Any, status: int, code: str) -> Sent:
        """POST an action the model says must be refused with ``code``."""
        sent = self.client.send(path, body)
        seen = (sent.status, sent.answer["error"]["code"] if sent.status >= 400 else None)
        assert seen == (status, code), f"POST {path} {body}: {sent.answer}"
        return self._keep(sent)

    # -- waiting for background work ---------------------------------------------------------

    def settled_order(self, order_id: str) -> dict[str, Any]:
        """The order once its latest operation is no longer running."""

        def idle(order: dict[str, Any]) -> bool:
            operation = order["operation"]
            return operation is None or operation["status"] != "RUNNING"

        order: dict[str, Any] = wait_until(
            lambda: self.client.get(f"/orders/{order_id}"), idle, SETTLE_S, f"order {order_id}"
        )
        return order

    def resource_in(
        self, path: str, statuses: set[str], what: str, *, trace: bool = False
    ) -> dict[str, Any]:
        """GET ``path`` until its ``status`` is one of ``statuses``.

        With ``trace``, a timeout also shows the Airtm webhooks the sandbox sent (the news
        this wait depends on).
        """
        try:
            found: dict[str, Any] = wait_until(
                lambda: self.client.get(path), lambda r: r["status"] in statuses, SETTLE_S, what
            )
        except AssertionError as error:
            if not trace:
                raise
            raise AssertionError(f"{error}\n{self.server.webhook_trace()}") from None
        return found

    def wallet_holds(self, address: str, amount: int) -> None:
        """Wait until ``address`` holds ``amount`` USDC on chain (a delivery landed)."""
        wait_until(
            lambda: self.client.usdc(address),
            lambda usdc: usdc == format_amount(amount),
            SETTLE_S,
            f"{address} holding {amount}",
        )
