"""The simulated Trustless Work service over the shared ``SandboxChain`` (providers.md 5.3).

A build checks the contract rules on a dry run, then returns a real unsigned envelope (source
= the role, seq = current + 1, fee = 100 + resource fee, ``soroban_data`` set, time bounds
now + window on the sandbox clock) and registers it as an intent keyed by its hash, both here
and with the chain. ``send`` runs the signed envelope through the chain's normal pipeline,
which proves the role signed and checks sequence and time bounds; the chain then calls the
intent, which re-checks the rules against the current state and moves the USDC.

Reads come from an indexer that lags ``indexer_lag_s`` seconds behind the chain unless
``validateOnChain`` is asked or ``/indexer/update-from-txHash`` names the transaction.
"""

import copy
import random
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from stellar_sdk import StrKey, TransactionEnvelope, scval

from providers.sandbox import trustless_work_actions as actions
from providers.sandbox.chain import SandboxChain, Submission
from providers.sandbox.chain_host import HostCall, HostFunctionTrapped, IntentApply
from providers.sandbox.chain_pipeline import MalformedEnvelope, parse_envelope
from providers.sandbox.trustless_work_actions import Action, ActionContext, DryRun
from providers.sandbox.trustless_work_envelopes import EnvelopeFactory, Invocation
from providers.sandbox.trustless_work_escrows import ContractRuleError, EscrowRecord
from providers.sandbox.trustless_work_views import TrustlessWorkError, escrow_json
from providers.trustless_work import bodies
from providers.trustless_work.contract_ids import contract_id_for_salt
from providers.trustless_work.fees import TRUSTLESS_WORK_FEE_BPS_DEFAULT
from providers.trustless_work.wire import minor_to_decimal

__all__ = ["TAMPER_MODES", "Intent", "TrustlessWorkConfig", "TrustlessWorkState"]

# The ways the tampered_xdr fault corrupts an envelope, used in turn.
TAMPER_MODES: Final = ("source", "contract", "amount", "extra_payment")
SEND_SUCCESS_MESSAGE: Final = "The transaction has been successfully sent to the Stellar network"


class TrustlessWorkConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of the simulated service."""

    trustless_work_fee_bps: int = TRUSTLESS_WORK_FEE_BPS_DEFAULT
    # Validity of a built XDR; providers.md 1.10 accepts (10 s, 15 min].
    xdr_window_s: int = 300
    resource_fee_stroops: int = 100_000
    indexer_lag_s: int = 0


@dataclass
class Intent:
    """A built, not yet tampered action, waiting for its signed envelope."""

    tx_hash: str
    action: Action
    applied: bool = False
    trap_message: str | None = None


@dataclass
class _Version:
    """What the indexer knows of an escrow after one transaction."""

    visible_at_s: float
    tx_hash: str
    escrow: EscrowRecord
    balance: int


class TrustlessWorkState:
    """Escrows, intents and the indexer of the simulated Trustless Work."""

    def __init__(
        self, chain: SandboxChain, *, config: TrustlessWorkConfig | None = None, seed: int = 0
    ) -> None:
        self.chain = chain
        self.config = config or TrustlessWorkConfig()
        self.indexer_lag_s = self.config.indexer_lag_s
        # Not for secrets: seeded so that contract ids repeat run after run.
        self._rng = random.Random(seed)  # noqa: S311
        self.deployer_id = StrKey.encode_contract(self._rng.randbytes(32))
        self.token_contract_id = chain.usdc.contract_id(chain.passphrase)
        self.tw_fee_address = chain.tw_fee.public_key
        # An address that is nobody's role: the tampered envelopes pay or act as it.
        self.attacker = StrKey.encode_ed25519_public_key(self._rng.randbytes(32))
        self.escrows: dict[str, EscrowRecord] = {}
        self.intents: dict[str, Intent] = {}
        self.last_tamper_mode: str | None = None
        self._versions: dict[str, list[_Version]] = {}
        self._tamper_turn = 0
        self.context = ActionContext(
            escrows=self.escrows,
            tw_fee_address=self.tw_fee_address,
            tw_fee_bps=self.config.trustless_work_fee_bps,
            token_contract_id=self.token_contract_id,
            usdc_issuer=chain.issuer.public_key,
            deployer_id=self.deployer_id,
            now_s=chain.clock.now_s,
        )
        self._factory = EnvelopeFactory(
            passphrase=chain.passphrase,
            token_contract_id=self.token_contract_id,
            base_fee=chain.base_fee,
            resource_fee=self.config.resource_fee_stroops,
            window_s=self.config.xdr_window_s,
        )

    # -- builds -----------------------------------------------------------------------------

    def deploy_action(
        self, body: bodies.DeploySingleReleaseBody | bodies.DeployMultiReleaseBody
    ) -> Action:
        """The deploy action; its contract id derives from the deployer and a fresh salt."""
        salt = self._rng.randbytes(32)
        contract_id = contract_id_for_salt(self.deployer_id, salt, self.chain.passphrase)
        return actions.deploy(self.context, body, contract_id=contract_id, salt=salt)

    def prepare(self, action: Action, *, tampered: bool = False) -> str:
        """Simulate ``action`` and return its unsigned envelope (registered unless tampered).

        Raises:
            ContractRuleError: A contract rule refuses the action now.
            TrustlessWorkError: The signing account does not exist.
        """
        entry = self.chain.account(action.source)
        if entry is None:
            raise TrustlessWorkError(400, f"Account not found: {action.source}")
        action.execute(DryRun(self.chain.usdc_balance))
        if tampered:
            return self._tampered(action, entry.sequence).to_xdr()
        envelope = self._factory.build(
            action.source, entry.sequence, action.invocation, now_s=self.chain.clock.now_s()
        )
        intent = Intent(tx_hash=envelope.hash_hex(), action=action)
        self.intents[intent.tx_hash] = intent
        self.chain.register_intent(intent.tx_hash, self._apply_fn(intent))
        return envelope.to_xdr()

    def _tampered(self, action: Action, sequence: int) -> TransactionEnvelope:
        """An envelope that a compromised TW could return; never registered, never applies."""
        mode = TAMPER_MODES[self._tamper_turn % len(TAMPER_MODES)]
        self._tamper_turn += 1
        self.last_tamper_mode = mode
        invocation, source, extra = action.invocation, action.source, None
        now_s = self.chain.clock.now_s()
        if mode == "source":
            source, sequence = self.attacker, 0
        elif mode == "contract":
            other = StrKey.encode_contract(self._rng.randbytes(32))
            invocation = Invocation(other, invocation.function_name, invocation.args)
        elif mode == "amount":
            args = (*invocation.args, scval.to_int128(1_000_000_000_000))
            invocation = Invocation(invocation.contract_id, invocation.function_name, args)
        else:
            extra = (self.attacker, self.chain.usdc, "1000")
        return self._factory.build(source, sequence, invocation, now_s=now_s, extra_payment=extra)

    def _apply_fn(self, intent: Intent) -> IntentApply:
        def apply(call: HostCall) -> None:
            try:
                intent.action.execute(call)
            except ContractRuleError as error:
                intent.trap_message = str(error)
                raise HostFunctionTrapped(str(error)) from error
            except HostFunctionTrapped as error:
                intent.trap_message = str(error)
                raise
            # Registered after the action's own hooks, so the indexer sees the new state.
            call.on_commit(lambda: self._committed(intent))

        return apply

    def _committed(self, intent: Intent) -> None:
        intent.applied = True
        contract_id = intent.action.contract_id
        escrow = self.escrows.get(contract_id)
        if escrow is None:
            return
        version = _Version(
            visible_at_s=self.chain.clock.now() + self.indexer_lag_s,
            tx_hash=intent.tx_hash,
            escrow=copy.deepcopy(escrow),
            balance=self.chain.contract_balance(contract_id),
        )
        self._versions.setdefault(contract_id, []).append(version)

    # -- send -------------------------------------------------------------------------------

    def send(self, signed_xdr: str) -> dict[str, Any]:
        """Submit a signed envelope built here; the SUCCESS reply (+ contractId after a deploy).

        Raises:
            TrustlessWorkError: 400 for an unknown, stale, expired, badly signed or already
                applied envelope, or a contract rule that traps it at apply time.
        """
        try:
            parsed = parse_envelope(signed_xdr, self.chain.passphrase)
        except MalformedEnvelope as error:
            raise TrustlessWorkError(400, f"Invalid transaction XDR: {error}") from error
        intent = self.intents.get(parsed.inner_hash)
        if intent is None:
            raise TrustlessWorkError(400, "The transaction was not built by this service")
        if self.chain.transaction(parsed.inner_hash) is not None:
            # Its sequence is consumed: as on-chain, a second submission is a bad sequence.
            raise TrustlessWorkError(400, "The transaction failed: tx_bad_seq")
        submission = self.chain.submit(signed_xdr)
        if submission.kind == "malformed":
            raise TrustlessWorkError(400, f"Invalid transaction XDR: {submission.detail}")
        if not submission.successful:
            raise TrustlessWorkError(400, self._failure_message(intent, submission))
        reply: dict[str, Any] = {"status": "SUCCESS", "message": SEND_SUCCESS_MESSAGE}
        action = intent.action
        if action.name == "deploy":
            reply["contractId"] = action.contract_id
            escrow = self.escrows[action.contract_id]
            reply["escrow"] = escrow_json(escrow, self.chain.contract_balance(escrow.contract_id))
        return reply

    @staticmethod
    def _failure_message(intent: Intent, submission: Submission) -> str:
        if submission.tx is not None and intent.trap_message is not None:
            return intent.trap_message  # the contract's own text, as TW relays it
        if submission.tx is not None:
            codes = submission.tx.result_codes
        else:
            assert submission.result is not None
            codes = submission.result.codes
        operations = ", ".join(codes.operations)
        detail = f"{codes.transaction} ({operations})" if operations else codes.transaction
        return f"The transaction failed: {detail}"

    # -- reads ------------------------------------------------------------------------------

    def escrows_json(self, contract_ids: list[str], *, validate_on_chain: bool) -> list[Any]:
        """Escrow objects; on-chain truth when validated, else the (possibly lagging) index."""
        found: list[Any] = []
        now = self.chain.clock.now()
        for contract_id in contract_ids:
            if validate_on_chain:
                escrow = self.escrows.get(contract_id)
                if escrow is not None:
                    balance = self.chain.contract_balance(contract_id)
                    found.append(escrow_json(escrow, balance))
                continue
            visible = [v for v in self._versions.get(contract_id, []) if v.visible_at_s <= now]
            if visible:
                found.append(escrow_json(visible[-1].escrow, visible[-1].balance))
        return found

    def balances_json(self, addresses: list[str]) -> list[dict[str, Any]]:
        """``[{address, balance}]`` read on-chain, in human units."""
        return [
            {"address": a, "balance": minor_to_decimal(self.chain.contract_balance(a))}
            for a in addresses
        ]

    def reindex(self, tx_hash: str) -> dict[str, str]:
        """Make the indexer catch up with ``tx_hash`` (and everything before it)."""
        record = self.chain.transaction(tx_hash.lower())
        intent = self.intents.get(tx_hash.lower())
        if record is None or intent is None:
            raise TrustlessWorkError(400, f"Transaction {tx_hash} not found")
        now = self.chain.clock.now()
        versions = self._versions.get(intent.action.contract_id, [])
        for index, version in enumerate(versions):
            if version.tx_hash == intent.tx_hash:
                for earlier in versions[: index + 1]:
                    earlier.visible_at_s = min(earlier.visible_at_s, now)
        return {"status": "SUCCESS", "message": "The escrow has been updated from the transaction"}
