"""The simulated Airtm enterprise: balance, users, payins, payouts and the webhook outbox.

State machines (providers.md 4.3/4.4), as simulated:

    payin   CREATED -> PROCESSING -> CONFIRMED | FAILED      (payer, test-driven)
            CREATED | PROCESSING -> CANCELED                  (payer, or DELETE while CREATED,
                                                               or 15 days in CREATED)
    payout  CREATED -commit-> COMMITTED -> COMPLETED | FAILED (test-driven)
            CREATED -commit-> PENDING (unknown recipient) -sign up-> COMMITTED
            CREATED | PENDING -> CANCELED                     (DELETE, or 90 days in PENDING)

Money: a confirmed payin credits ``available`` with its net amount; a commit moves the payout
amount from ``available`` to ``pending``; completion removes it; failure and cancellation give
it back. Expiry is evaluated lazily against the sandbox clock before every operation.
"""

import random
import uuid
from typing import Final

from providers.airtm.port import PayinStatus, PayoutStatus
from providers.sandbox.airtm_records import (
    DAY_S,
    ENCODER,
    AirtmError,
    AirtmStateConfig,
    BalanceMovement,
    ItemRecord,
    OutboxMessage,
    PayinCreateBody,
    PayinRecord,
    PayoutCreateBody,
    PayoutRecord,
    SandboxUser,
    airtm_fee_minor,
    render_payin,
    render_payout,
    wire_minor,
)
from providers.sandbox.clock import SandboxClock

__all__ = ["DAY_S", "AirtmState", "AirtmStateConfig"]

_ID_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_PAYER_CAN_ACT: Final = frozenset({PayinStatus.CREATED, PayinStatus.PROCESSING})
_PAYOUT_IN_FLIGHT: Final = frozenset({PayoutStatus.COMMITTED, PayoutStatus.PROCESSING})


class AirtmState:
    """One simulated Airtm enterprise account. Tests drive it directly or through the app."""

    def __init__(
        self, clock: SandboxClock, config: AirtmStateConfig | None = None, *, seed: int = 0
    ) -> None:
        self.clock = clock
        self.config = config or AirtmStateConfig()
        self._rng = random.Random(seed)  # noqa: S311 - reproducible ids, not secrets
        self.available_minor = 0
        self.pending_minor = 0
        self.users: dict[str, SandboxUser] = {}
        self.payins: dict[str, PayinRecord] = {}
        self.payouts: dict[str, PayoutRecord] = {}
        self.outbox: list[OutboxMessage] = []
        self.movements: list[BalanceMovement] = []
        self._payin_ids_by_code: dict[str, str] = {}
        self._payout_ids_by_code: dict[str, str] = {}

    # -- reads ---------------------------------------------------------------------------

    def user(self, email: str) -> SandboxUser:
        """Return the account of ``email``, matched case-insensitively (415059 when unknown)."""
        user = self.users.get(email.casefold())
        if user is None:
            raise AirtmError(415059, "User not found")
        return user

    def payin(self, payin_id: str) -> PayinRecord:
        """Return a payin by id (415031 when unknown)."""
        self.expire_due()
        record = self.payins.get(payin_id)
        if record is None:
            raise AirtmError(415031)
        return record

    def payin_by_code(self, code: str) -> PayinRecord:
        """Return a payin by code (415031 when unknown)."""
        return self.payin(self._payin_ids_by_code.get(code, ""))

    def payout(self, payout_id: str) -> PayoutRecord:
        """Return a payout by id (415005 when unknown)."""
        self.expire_due()
        record = self.payouts.get(payout_id)
        if record is None:
            raise AirtmError(415005)
        return record

    def payout_by_code(self, code: str) -> PayoutRecord:
        """Return a payout by code (415005 when unknown)."""
        return self.payout(self._payout_ids_by_code.get(code, ""))

    # -- API writes ----------------------------------------------------------------------

    def create_payin(self, body: PayinCreateBody) -> PayinRecord:
        """``POST /payins``: validate, enforce the unique code, store as CREATED."""
        self.expire_due()
        amount_minor = wire_minor(body.amount)
        items = tuple(
            ItemRecord(
                description=item.description,
                amount_minor=wire_minor(item.amount),
                quantity=item.quantity,
            )
            for item in body.items
        )
        if sum(item.amount_minor * item.quantity for item in items) != amount_minor:
            raise AirtmError(415901, "the items do not add up to the amount")
        if body.code in self._payin_ids_by_code:
            raise AirtmError(415029)
        now = self.clock.now()
        record = PayinRecord(
            id=self._new_uuid(),
            code=body.code,
            status=PayinStatus.CREATED,
            amount_minor=amount_minor,
            fee_minor=airtm_fee_minor(amount_minor, self.config.payin_fee_bps),
            description=body.description,
            items=items,
            confirmation_uri=body.confirmation_uri,
            cancel_uri=body.cancel_uri,
            created_at_s=now,
            updated_at_s=now,
        )
        self.payins[record.id] = record
        self._payin_ids_by_code[record.code] = record.id
        self._emit_payin("payin.created", record)
        return record

    def cancel_payin(self, payin_id: str) -> PayinRecord:
        """``DELETE /payins/{id}``: only while CREATED (415030 otherwise)."""
        record = self.payin(payin_id)
        if record.status is not PayinStatus.CREATED:
            raise AirtmError(415030)
        return self._finish_payin(record, PayinStatus.CANCELED, "payin.canceled")

    def create_payout(self, body: PayoutCreateBody) -> PayoutRecord:
        """``POST /payouts``: validate, check recipient and balance, store, commit if asked."""
        self.expire_due()
        gross_minor = wire_minor(body.amount)
        enterprise_fee_minor = (
            0 if body.enterprise_fee is None else wire_minor(body.enterprise_fee, allow_zero=True)
        )
        if enterprise_fee_minor >= gross_minor:
            raise AirtmError(415901, "the enterprise fee must be below the amount")
        if "@" not in body.airtm_user_email:
            raise AirtmError(415901, "airtmUserEmail is not an email address")
        if body.code in self._payout_ids_by_code:
            raise AirtmError(415056)
        user = self._check_recipient(body.airtm_user_email)
        if self.available_minor < gross_minor - enterprise_fee_minor:
            raise AirtmError(415016)
        now = self.clock.now()
        record = PayoutRecord(
            id=self._new_uuid(),
            code=body.code,
            status=PayoutStatus.CREATED,
            gross_minor=gross_minor,
            enterprise_fee_minor=enterprise_fee_minor,
            airtm_fee_minor=airtm_fee_minor(
                gross_minor - enterprise_fee_minor, self.config.payout_fee_bps
            ),
            email=body.airtm_user_email,
            notes=body.notes,
            created_at_s=now,
            updated_at_s=now,
            history=[(PayoutStatus.CREATED, now)],
            user_id=None if user is None else user.id,
        )
        self.payouts[record.id] = record
        self._payout_ids_by_code[record.code] = record.id
        self._emit_payout("payout.created", record)
        if body.commit:
            self._commit(record)
        return record

    def commit_payout(self, payout_id: str) -> PayoutRecord:
        """``POST /payouts/{id}/commit``: 415027 unless CREATED, 415016 without funds."""
        return self._commit(self.payout(payout_id))

    def cancel_payout(self, payout_id: str) -> PayoutRecord:
        """``DELETE /payouts/{id}``: only CREATED or PENDING (415055); funds return."""
        record = self.payout(payout_id)
        if record.status not in {PayoutStatus.CREATED, PayoutStatus.PENDING}:
            raise AirtmError(415055)
        return self._finish_payout(record, PayoutStatus.CANCELED, "payout.canceled")

    # -- test-driven transitions ---------------------------------------------------------

    def add_user(
        self, email: str, *, status: str = "active", country: str = "AR", is_verified: bool = True
    ) -> SandboxUser:
        """Register an Airtm account (``status`` ``inactive`` cannot receive payouts)."""
        user = SandboxUser(
            id=self._new_uuid(),
            email=email,
            status=status,
            country=country,
            is_verified=is_verified,
        )
        self.users[email.casefold()] = user
        return user

    def sign_up(self, email: str) -> SandboxUser:
        """The recipient opens an account: their PENDING payouts move on to COMMITTED."""
        user = self.users.get(email.casefold()) or self.add_user(email)
        user.status = "active"
        for record in self.payouts.values():
            same_email = record.email.casefold() == email.casefold()
            if same_email and record.status is PayoutStatus.PENDING:
                record.user_id = user.id
                self._set_payout_status(record, PayoutStatus.COMMITTED)
        return user

    def fund(self, amount_minor: int) -> None:
        """Top up the enterprise balance from outside (the operator's wire to Airtm)."""
        self._move(amount_minor, 0, "fund", "enterprise")

    def payer_starts(self, payin_id: str) -> PayinRecord:
        """The payer begins paying: CREATED -> PROCESSING (Airtm sends no webhook for it)."""
        record = self.payin(payin_id)
        if record.status is not PayinStatus.CREATED:
            raise AirtmError(415030)
        record.status = PayinStatus.PROCESSING
        record.updated_at_s = self.clock.now()
        return record

    def payer_confirms(self, payin_id: str, payer_email: str = "payer@example.com") -> PayinRecord:
        """The payer pays: CONFIRMED, and the net amount lands in the enterprise balance."""
        record = self._payer_acts(payin_id)
        payer = self.users.get(payer_email.casefold()) or self.add_user(payer_email)
        if payer.country == "US":
            raise AirtmError(415053)
        record.payer_id, record.payer_email = payer.id, payer.email
        self._move(record.amount_minor - record.fee_minor, 0, "payin.confirmed", record.id)
        return self._finish_payin(record, PayinStatus.CONFIRMED, "payin.confirmed")

    def payer_cancels(self, payin_id: str) -> PayinRecord:
        """The payer abandons the checkout: CANCELED."""
        record = self._payer_acts(payin_id)
        return self._finish_payin(record, PayinStatus.CANCELED, "payin.canceled")

    def payer_fails(self, payin_id: str, reason: str = "PAYMENT_DECLINED") -> PayinRecord:
        """The payer's payment fails: FAILED with ``failureReason``."""
        record = self._payer_acts(payin_id)
        record.failure_reason = reason
        return self._finish_payin(record, PayinStatus.FAILED, "payin.failed")

    def payout_completes(self, payout_id: str) -> PayoutRecord:
        """The recipient is paid: COMPLETED, and the held amount leaves the enterprise."""
        record = self.payout(payout_id)
        if record.status not in _PAYOUT_IN_FLIGHT:
            raise AirtmError(415027, f"payout is {record.status.value}, not in flight")
        self._move(0, -record.held_minor, "payout.completed", record.id)
        record.held_minor = 0
        return self._finish_payout(record, PayoutStatus.COMPLETED, "payout.completed")

    def payout_fails(
        self, payout_id: str, reason_code: str = "REJECTED", reason_description: str = ""
    ) -> PayoutRecord:
        """Airtm gives up: FAILED, and the held amount returns to ``available``."""
        record = self.payout(payout_id)
        if record.status not in _PAYOUT_IN_FLIGHT | {PayoutStatus.PENDING}:
            raise AirtmError(415027, f"payout is {record.status.value}, not in flight")
        record.reason_code, record.reason_description = reason_code, reason_description
        return self._finish_payout(record, PayoutStatus.FAILED, "payout.failed")

    def expire_due(self) -> None:
        """Cancel payins CREATED for 15 days and payouts PENDING for 90 days (clock-driven)."""
        now = self.clock.now()
        for payin in self.payins.values():
            expired = now - payin.created_at_s >= self.config.payin_expiry_s
            if payin.status is PayinStatus.CREATED and expired:
                payin.failure_reason = "EXPIRED"
                self._finish_payin(payin, PayinStatus.CANCELED, "payin.canceled")
        for payout in self.payouts.values():
            since_s = payout.pending_since_s
            is_pending = payout.status is PayoutStatus.PENDING and since_s is not None
            if is_pending and now - (since_s or now) >= self.config.payout_pending_expiry_s:
                payout.reason_code = "EXPIRED"
                self._finish_payout(payout, PayoutStatus.CANCELED, "payout.canceled")

    # -- internals -----------------------------------------------------------------------

    def _check_recipient(self, email: str) -> SandboxUser | None:
        user = self.users.get(email.casefold())
        if user is None:
            if self.config.reject_unknown_recipients:
                raise AirtmError(415059)
            return None
        if user.status != "active":
            raise AirtmError(415060)
        if user.country in self.config.restricted_countries:
            raise AirtmError(415061)
        return user

    def _commit(self, record: PayoutRecord) -> PayoutRecord:
        if record.status is not PayoutStatus.CREATED:
            raise AirtmError(415027)
        if self.available_minor < record.amount_minor:
            raise AirtmError(415016)
        self._move(-record.amount_minor, record.amount_minor, "payout.committed", record.id)
        record.held_minor = record.amount_minor
        user = self.users.get(record.email.casefold())
        if user is None:
            record.pending_since_s = self.clock.now()
            self._set_payout_status(record, PayoutStatus.PENDING)
        else:
            record.user_id = user.id
            self._set_payout_status(record, PayoutStatus.COMMITTED)
        return record

    def _payer_acts(self, payin_id: str) -> PayinRecord:
        record = self.payin(payin_id)
        if record.status not in _PAYER_CAN_ACT:
            raise AirtmError(415030)
        return record

    def _finish_payin(self, record: PayinRecord, status: PayinStatus, event: str) -> PayinRecord:
        record.status = status
        record.updated_at_s = self.clock.now()
        self._emit_payin(event, record)
        return record

    def _finish_payout(
        self, record: PayoutRecord, status: PayoutStatus, event: str
    ) -> PayoutRecord:
        if record.held_minor:
            self._move(record.held_minor, -record.held_minor, event, record.id)
            record.held_minor = 0
        self._set_payout_status(record, status)
        self._emit_payout(event, record)
        return record

    def _set_payout_status(self, record: PayoutRecord, status: PayoutStatus) -> None:
        record.status = status
        record.updated_at_s = self.clock.now()
        record.history.append((status, record.updated_at_s))

    def _move(
        self, available_delta: int, pending_delta: int, reason: str, resource_id: str
    ) -> None:
        self.available_minor += available_delta
        self.pending_minor += pending_delta
        assert self.available_minor >= 0, "available balance went negative"
        assert self.pending_minor >= 0, "pending balance went negative"
        movement = BalanceMovement(
            at_s=self.clock.now(),
            available_delta_minor=available_delta,
            pending_delta_minor=pending_delta,
            reason=reason,
            resource_id=resource_id,
        )
        self.movements.append(movement)

    def _new_uuid(self) -> str:
        # Seeded, so a test run always produces the same ids.
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _emit_payin(self, event: str, record: PayinRecord) -> None:
        self._emit(event, ENCODER.encode({"type": event, "data": render_payin(record)}))

    def _emit_payout(self, event: str, record: PayoutRecord) -> None:
        self._emit(event, ENCODER.encode({"type": event, "data": render_payout(record)}))

    def _emit(self, event: str, body: bytes) -> None:
        suffix = "".join(self._rng.choice(_ID_ALPHABET) for _ in range(27))
        message = OutboxMessage(
            message_id=f"msg_{suffix}", type=event, body=body, created_at_s=self.clock.now()
        )
        self.outbox.append(message)
