"""The address a deploy will give its escrow, derived the way Soroban derives contract ids.

TW's send reply carries ``contractId`` after a deploy (providers.md 1.5), but a reply can be
lost while the deploy lands. The orchestrator then needs the id without the reply: Soroban
derives it from the network id, the deploying address and the deploy's 32-byte salt, all of
which are in the envelope we signed. Which address TW's deployer passes is **uncertain**
(providers.md 1.11), so the caller must confirm a derived id by reading the escrow back
(engagement id, roles, amount) before it trusts it.
"""

import hashlib
from typing import Final

from stellar_sdk import Address, Network, StrKey, TransactionEnvelope, xdr
from stellar_sdk.operation import InvokeHostFunction

__all__ = ["contract_id_for_salt", "deployed_contract_id"]

_SALT_BYTES: Final = 32


def contract_id_for_salt(deployer_address: str, salt: bytes, passphrase: str) -> str:
    """``C…`` id of the contract ``deployer_address`` deploys with ``salt`` on this network."""
    preimage = xdr.HashIDPreimage(
        type=xdr.EnvelopeType.ENVELOPE_TYPE_CONTRACT_ID,
        contract_id=xdr.HashIDPreimageContractID(
            network_id=xdr.Hash(Network(passphrase).network_id()),
            contract_id_preimage=xdr.ContractIDPreimage(
                type=xdr.ContractIDPreimageType.CONTRACT_ID_PREIMAGE_FROM_ADDRESS,
                from_address=xdr.ContractIDPreimageFromAddress(
                    address=Address(deployer_address).to_xdr_sc_address(),
                    salt=xdr.Uint256(salt),
                ),
            ),
        ),
    )
    return StrKey.encode_contract(hashlib.sha256(preimage.to_xdr_bytes()).digest())


def deployed_contract_id(envelope_xdr: str, passphrase: str) -> str | None:
    """The id a deploy envelope creates: the deployer contract and the first 32-byte argument.

    ``None`` when the envelope is not a single contract invocation carrying a salt.
    """
    envelope = TransactionEnvelope.from_xdr(envelope_xdr, passphrase)
    operations = envelope.transaction.operations
    if len(operations) != 1 or not isinstance(operations[0], InvokeHostFunction):
        return None
    invoke = operations[0].host_function.invoke_contract
    if invoke is None:
        return None
    deployer = Address.from_xdr_sc_address(invoke.contract_address).address
    for argument in invoke.args:
        if argument.bytes is not None and len(argument.bytes.sc_bytes) == _SALT_BYTES:
            return contract_id_for_salt(deployer, argument.bytes.sc_bytes, passphrase)
    return None
