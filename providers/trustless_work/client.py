"""The real Trustless Work V1 client over an injected ``httpx.AsyncClient``.

It implements ``EscrowProvider``. The caller owns the ``httpx.AsyncClient`` (its lifecycle,
transport and limits); the client only adds the base URL, the ``x-api-key`` header and a
timeout per call. Paths are configuration because the multi-release routes are uncertain
(providers.md 1.11). The shared 50 requests / 60 s budget is the caller's concern.
"""

import asyncio
from collections.abc import Sequence
from typing import Final, TypeVar

import httpx
import msgspec

from common.metrics import provider_call
from providers.errors import ProviderUnavailable
from providers.trustless_work import bodies, mapping
from providers.trustless_work.errors import PROVIDER, converted_errors, error_for_response
from providers.trustless_work.port import (
    OUTCOME_UNKNOWN,
    ApproveMilestoneRequest,
    ChangeMilestoneStatusRequest,
    DeployMultiReleaseRequest,
    DeploySingleReleaseRequest,
    DisputeRequest,
    Escrow,
    EscrowBalance,
    EscrowType,
    FundRequest,
    IndexerUpdate,
    ReleaseMilestoneRequest,
    ReleaseRequest,
    ResolveDisputeRequest,
    SendResult,
    SignedTransaction,
    UnsignedTransaction,
    WithdrawRemainingRequest,
)
from providers.trustless_work.settings import EscrowPaths, TrustlessWorkSettings
from providers.trustless_work.wire import (
    WIRE_ENCODER,
    BuildReply,
    IndexerReply,
    SendReply,
    WireBalance,
    WireEscrow,
    decimal_to_minor,
    minor_to_decimal,
)

__all__ = ["TrustlessWorkClient"]

_T = TypeVar("_T")
_SUCCESS: Final = "SUCCESS"
# Decoders are built once (msgspec perf tips); each one fixes the expected reply shape.
_BUILD_DECODER: Final = msgspec.json.Decoder(BuildReply)
_SEND_DECODER: Final = msgspec.json.Decoder(SendReply)
_ESCROWS_DECODER: Final = msgspec.json.Decoder(tuple[WireEscrow, ...])
_BALANCES_DECODER: Final = msgspec.json.Decoder(tuple[WireBalance, ...])
_INDEXER_DECODER: Final = msgspec.json.Decoder(IndexerReply)
_JSON_CONTENT: Final = {"content-type": "application/json"}


class TrustlessWorkClient:
    """``EscrowProvider`` over HTTP; the same code talks to TW or to the sandbox."""

    def __init__(
        self, http: httpx.AsyncClient, settings: TrustlessWorkSettings, *, api_key: str
    ) -> None:
        """Wrap ``http`` (owned by the caller) for the TW host in ``settings``.

        The API key is kept out of ``settings`` so that it never shows up in a repr or a log.
        """
        if not api_key:
            raise ValueError("a Trustless Work API key is required")
        self._http = http
        self._settings = settings
        self._headers = {"x-api-key": api_key, "accept": "application/json"}

    def __repr__(self) -> str:
        return f"TrustlessWorkClient(base_url={self._settings.base_url!r})"

    def _paths(self, escrow_type: EscrowType) -> EscrowPaths:
        if escrow_type == "multi-release":
            return self._settings.multi_release
        return self._settings.single_release

    def _url(self, path: str) -> str:
        return self._settings.base_url.rstrip("/") + "/" + path.lstrip("/")

    async def _call(
        self,
        decoder: msgspec.json.Decoder[_T],
        method: str,
        path: str,
        *,
        body: msgspec.Struct | None = None,
        params: tuple[tuple[str, str], ...] | None = None,
        is_send: bool = False,
    ) -> _T:
        # Every request and decode runs inside converted_errors: the single conversion point.
        timeout_s = self._settings.send_timeout_s if is_send else self._settings.timeout_s
        content = None if body is None else WIRE_ENCODER.encode(body)
        headers = self._headers if body is None else self._headers | _JSON_CONTENT
        with converted_errors(is_send=is_send):
            with provider_call(PROVIDER, method, path) as call:
                # asyncio.timeout as well as httpx's: in-process transports (ASGI) ignore httpx's.
                async with asyncio.timeout(timeout_s):
                    response = await self._http.request(
                        method,
                        self._url(path),
                        content=content,
                        params=params,
                        headers=headers,
                        timeout=timeout_s,
                    )
                call.answered(response.status_code)
            if not response.is_success:
                raise error_for_response(response, is_send=is_send)
            return decoder.decode(response.content)

    async def _build(self, path: str, body: msgspec.Struct) -> UnsignedTransaction:
        reply = await self._call(_BUILD_DECODER, "POST", path, body=body)
        return UnsignedTransaction(unsigned_xdr=reply.unsigned_transaction, status=reply.status)

    async def build_deploy_single_release(
        self, request: DeploySingleReleaseRequest
    ) -> UnsignedTransaction:
        """POST the single-release deployer; the XDR source is ``request.signer``."""
        body = mapping.deploy_single_release_body(request)
        return await self._build(self._settings.single_release.deploy, body)

    async def build_deploy_multi_release(
        self, request: DeployMultiReleaseRequest
    ) -> UnsignedTransaction:
        """POST the multi-release deployer; the XDR source is ``request.signer``."""
        body = mapping.deploy_multi_release_body(request)
        return await self._build(self._settings.multi_release.deploy, body)

    async def build_fund(self, request: FundRequest) -> UnsignedTransaction:
        """POST fund-escrow; the buyer's wallet is the source and pays the USDC."""
        body = bodies.FundBody(
            contract_id=request.contract_id,
            amount=minor_to_decimal(request.amount_minor),
            signer=request.signer,
        )
        return await self._build(self._paths(request.escrow_type).fund, body)

    async def build_change_milestone_status(
        self, request: ChangeMilestoneStatusRequest
    ) -> UnsignedTransaction:
        """POST change-milestone-status, always with ``newEvidence`` (empty is fine)."""
        body = bodies.ChangeMilestoneStatusBody(
            contract_id=request.contract_id,
            milestone_index=str(request.milestone_index),
            new_status=request.new_status,
            new_evidence=request.new_evidence,
            service_provider=request.service_provider,
        )
        return await self._build(self._paths(request.escrow_type).change_milestone_status, body)

    async def build_approve_milestone(
        self, request: ApproveMilestoneRequest
    ) -> UnsignedTransaction:
        """POST approve-milestone; signed by the approver."""
        body = bodies.ApproveMilestoneBody(
            contract_id=request.contract_id,
            milestone_index=str(request.milestone_index),
            approver=request.approver,
        )
        return await self._build(self._paths(request.escrow_type).approve_milestone, body)

    async def build_release(self, request: ReleaseRequest) -> UnsignedTransaction:
        """POST single-release release-funds."""
        body = bodies.ReleaseBody(
            contract_id=request.contract_id, release_signer=request.release_signer
        )
        return await self._build(self._settings.single_release.release, body)

    async def build_release_milestone(
        self, request: ReleaseMilestoneRequest
    ) -> UnsignedTransaction:
        """POST multi-release release-milestone-funds."""
        body = bodies.ReleaseBody(
            contract_id=request.contract_id,
            release_signer=request.release_signer,
            milestone_index=str(request.milestone_index),
        )
        return await self._build(self._settings.multi_release.release, body)

    async def build_dispute(self, request: DisputeRequest) -> UnsignedTransaction:
        """POST dispute-escrow (single) or dispute-milestone (multi)."""
        index = None if request.milestone_index is None else str(request.milestone_index)
        body = bodies.DisputeBody(
            contract_id=request.contract_id, signer=request.signer, milestone_index=index
        )
        return await self._build(self._paths(request.escrow_type).dispute, body)

    async def build_resolve_dispute(self, request: ResolveDisputeRequest) -> UnsignedTransaction:
        """POST resolve-dispute (single) or resolve-milestone-dispute (multi)."""
        body = mapping.resolve_dispute_body(request)
        return await self._build(self._paths(request.escrow_type).resolve_dispute, body)

    async def build_withdraw_remaining(
        self, request: WithdrawRemainingRequest
    ) -> UnsignedTransaction:
        """POST multi-release withdraw-remaining-funds."""
        path = self._settings.multi_release.withdraw_remaining
        if path is None:
            raise ValueError("withdraw-remaining has no configured path")
        return await self._build(path, mapping.withdraw_remaining_body(request))

    async def send_transaction(self, transaction: SignedTransaction) -> SendResult:
        """POST send-transaction with a signed envelope whose hash the caller persisted.

        Raises:
            ProviderUnavailable: ``reason == "outcome_unknown"`` after a timeout, a dropped
                connection, a 5xx, a transient "result not ready" error or a non-SUCCESS
                status: look ``transaction.tx_hash`` up on Horizon before anything else.
            ProviderRejected: a 4xx refusal (resubmitting an applied XDR may also land here).
        """
        body = bodies.SendTransactionBody(signed_xdr=transaction.signed_xdr)
        path = self._settings.helpers.send_transaction
        reply = await self._call(_SEND_DECODER, "POST", path, body=body, is_send=True)
        if reply.status is not None and reply.status.upper() != _SUCCESS:
            raise _outcome_unknown(transaction.tx_hash, reply)
        with converted_errors(is_send=False):
            escrow = _deployed_escrow(reply)
        return SendResult(
            tx_hash=transaction.tx_hash,
            status=reply.status,
            message=reply.message,
            contract_id=reply.contract_id,
            escrow=escrow,
        )

    async def get_escrows(
        self, contract_ids: Sequence[str], *, validate_on_chain: bool = True
    ) -> tuple[Escrow, ...]:
        """GET escrows by contract ids (``contractIds[]=`` form), checked on-chain by default."""
        if not contract_ids:
            return ()
        # The explicit "name[]" form: a lone "contractIds=C1" may reach TW as a plain string.
        ids = tuple(("contractIds[]", contract_id) for contract_id in contract_ids)
        params = (*ids, ("validateOnChain", "true" if validate_on_chain else "false"))
        path = self._settings.helpers.get_escrows
        with converted_errors(is_send=False):
            wires = await self._call(_ESCROWS_DECODER, "GET", path, params=params)
            return tuple(mapping.escrow_from_wire(wire) for wire in wires)

    async def get_balances(self, contract_ids: Sequence[str]) -> tuple[EscrowBalance, ...]:
        """GET contract balances, in batches of at most ``balance_batch_max`` addresses."""
        balances: list[EscrowBalance] = []
        batch_max = self._settings.balance_batch_max
        path = self._settings.helpers.get_balances
        for start in range(0, len(contract_ids), batch_max):
            batch = contract_ids[start : start + batch_max]
            params = tuple(("addresses[]", contract_id) for contract_id in batch)
            with converted_errors(is_send=False):
                wires = await self._call(_BALANCES_DECODER, "GET", path, params=params)
                balances.extend(
                    EscrowBalance(contract_id=w.address, balance_minor=decimal_to_minor(w.balance))
                    for w in wires
                )
        return tuple(balances)

    async def update_from_tx_hash(self, tx_hash: str) -> IndexerUpdate:
        """POST update-from-txHash so TW's indexer catches up with a tx sent outside TW."""
        body = bodies.IndexerBody(tx_hash=tx_hash)
        path = self._settings.helpers.update_from_tx_hash
        reply = await self._call(_INDEXER_DECODER, "POST", path, body=body)
        return IndexerUpdate(status=reply.status, message=reply.message)


def _deployed_escrow(reply: SendReply) -> Escrow | None:
    if reply.escrow is None:
        return None
    return mapping.escrow_from_wire(reply.escrow, contract_id=reply.contract_id)


def _outcome_unknown(tx_hash: str, reply: SendReply) -> ProviderUnavailable:
    # A 2xx without SUCCESS is not a definitive failure: only Horizon knows (providers.md 1.3).
    return ProviderUnavailable(
        f"send-transaction for {tx_hash} answered status {reply.status!r}: {reply.message}",
        provider=PROVIDER,
        reason=OUTCOME_UNKNOWN,
    )
