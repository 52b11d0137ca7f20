"""Per-user wallet keys: a fresh Stellar keypair per wallet, its seed sealed with AES-256-GCM.

Pure (no database, no network). The stored form is ``v<key_version>:<base64(nonce|ciphertext)>``
where the ciphertext carries GCM's 128-bit tag and the nonce is 96 random bits per seal. The
associated data binds the ciphertext to its row (providers.md 3): marketplace id, wallet id and
public key, so a sealed secret copied to another wallet fails to open; after opening, the
derived public key must also equal the row's.

Rotation: a :class:`MasterKeyring` holds several versions; sealing always uses the newest,
opening uses the version named in the prefix. A missing version refuses to open (no fallback).

The seed never appears in ``repr``/``str``, logs or exception messages: it travels inside
:class:`SecretSeed`, whose representation is redacted, and errors only say what failed.
"""

import base64
import binascii
import hmac
import os
import re
from collections.abc import Mapping
from typing import ClassVar, Final, NoReturn

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from stellar_sdk import Keypair

from common.errors import AppError

__all__ = [
    "MasterKeyring",
    "NewWalletKeys",
    "SealedSecret",
    "SecretSeed",
    "WalletKeyError",
    "generate_wallet_keys",
    "open_secret",
    "reseal_secret",
    "seal_secret",
    "self_test",
]

_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_SEED_BYTES: Final = 32
_TAG_BYTES: Final = 16
_AAD_PREFIX: Final = "offerhub-wallet-secret:v1"
_SEALED_PATTERN: Final = re.compile(r"v([1-9][0-9]{0,8}):([A-Za-z0-9+/]+={0,2})")
_REDACTED: Final = "<redacted>"


class WalletKeyError(AppError):
    """A wallet secret could not be sealed or opened; the wallet cannot sign."""

    code: ClassVar[str] = "INTERNAL_ERROR"


def _fail(message: str, **details: object) -> NoReturn:
    # ``from None``: the cryptography exception adds nothing and must not chain buffers along.
    raise WalletKeyError(message, **details) from None


class SecretSeed:
    """A raw 32-byte ed25519 seed whose ``repr``/``str`` never show it.

    Hold it only for the time it takes to sign; nothing caches it.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != _SEED_BYTES:
            _fail("a wallet seed is 32 bytes")
        self._raw = bytes(raw)

    @classmethod
    def from_keypair(cls, keypair: Keypair) -> "SecretSeed":
        """The seed of a keypair that holds its secret."""
        return cls(keypair.raw_secret_key())

    def reveal(self) -> bytes:
        """The raw seed bytes, for sealing only."""
        return self._raw

    def keypair(self) -> Keypair:
        """A signing keypair for this seed (build it just before signing)."""
        return Keypair.from_raw_ed25519_seed(self._raw)

    def __repr__(self) -> str:
        return f"SecretSeed({_REDACTED})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretSeed):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    __hash__ = None  # type: ignore[assignment]  # secrets are not dictionary keys

    def __reduce__(self) -> NoReturn:
        # Pickling would write the seed to wherever the pickle goes (caches, task queues).
        raise TypeError("SecretSeed cannot be pickled")


class MasterKeyring:
    """Master keys by version (each 32 bytes); the newest version seals.

    Args:
        keys: version (>= 1) -> 32 random bytes. Retired versions may be dropped once no
            sealed secret carries their prefix.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[int, bytes]) -> None:
        if not keys:
            _fail("the master keyring is empty")
        for version, key in keys.items():
            if version < 1 or len(key) != _KEY_BYTES:
                _fail("each master key needs a version >= 1 and 32 bytes", version=version)
        self._keys = {version: AESGCM(bytes(key)) for version, key in keys.items()}

    @classmethod
    def from_text(cls, text: str) -> "MasterKeyring":
        """Parse ``"1:<base64 key>,2:<base64 key>"`` (the settings/env form).

        Raises:
            WalletKeyError: a part is malformed (the message never quotes the key).
        """
        keys: dict[int, bytes] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            version, _, encoded = part.partition(":")
            if not version.isdigit():
                _fail("a master key entry must be <version>:<base64>")
            try:
                keys[int(version)] = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                _fail("a master key is not valid base64", version=int(version))
        return cls(keys)

    @property
    def active_version(self) -> int:
        """The version new seals use: the newest one."""
        return max(self._keys)

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version this keyring can open, ascending."""
        return tuple(sorted(self._keys))

    def cipher(self, version: int) -> AESGCM:
        """The AES-GCM cipher of ``version``.

        Raises:
            WalletKeyError: the version is unknown (refuse to sign; never fall back).
        """
        cipher = self._keys.get(version)
        if cipher is None:
            _fail("no master key for this version", key_version=version)
        return cipher

    def __repr__(self) -> str:
        return f"MasterKeyring(versions={self.versions})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("MasterKeyring cannot be pickled")


class SealedSecret(msgspec.Struct, frozen=True, kw_only=True):
    """A sealed seed as stored in the wallet row."""

    text: str
    key_version: int


class NewWalletKeys(msgspec.Struct, frozen=True, kw_only=True):
    """A freshly generated wallet: its public key and its sealed seed."""

    public_key: str
    sealed: SealedSecret


def _associated_data(marketplace_id: str, wallet_id: str, public_key: str) -> bytes:
    return "|".join((_AAD_PREFIX, marketplace_id, wallet_id, public_key)).encode()


def _seal(cipher: AESGCM, version: int, seed: SecretSeed, aad: bytes) -> SealedSecret:
    # A fresh random nonce per seal: GCM breaks if a nonce repeats under one key.
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = cipher.encrypt(nonce, seed.reveal(), aad)
    text = f"v{version}:{base64.b64encode(nonce + ciphertext).decode()}"
    return SealedSecret(text=text, key_version=version)


def seal_secret(
    keyring: MasterKeyring,
    seed: SecretSeed,
    *,
    marketplace_id: str,
    wallet_id: str,
    public_key: str,
) -> SealedSecret:
    """Seal ``seed`` for one wallet row with the newest master key."""
    if seed.keypair().public_key != public_key:
        _fail("the seed does not belong to this public key", wallet_id=wallet_id)
    version = keyring.active_version
    aad = _associated_data(marketplace_id, wallet_id, public_key)
    return _seal(keyring.cipher(version), version, seed, aad)


def open_secret(
    keyring: MasterKeyring,
    sealed: str,
    *,
    marketplace_id: str,
    wallet_id: str,
    public_key: str,
) -> SecretSeed:
    """Open a sealed seed of one wallet row.

    Raises:
        WalletKeyError: malformed text, unknown key version, authentication failure (tampered,
            or sealed for another row), or a seed whose public key is not the row's.
    """
    match = _SEALED_PATTERN.fullmatch(sealed)
    if match is None:
        _fail("the sealed secret is malformed", wallet_id=wallet_id)
    version = int(match.group(1))
    cipher = keyring.cipher(version)
    try:
        blob = base64.b64decode(match.group(2), validate=True)
    except binascii.Error:
        _fail("the sealed secret is not valid base64", wallet_id=wallet_id)
    if len(blob) != _NONCE_BYTES + _SEED_BYTES + _TAG_BYTES:
        _fail("the sealed secret has the wrong length", wallet_id=wallet_id)
    aad = _associated_data(marketplace_id, wallet_id, public_key)
    try:
        raw = cipher.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
    except InvalidTag:
        _fail("the sealed secret failed authentication", wallet_id=wallet_id)
    seed = SecretSeed(raw)
    if seed.keypair().public_key != public_key:
        _fail("the sealed seed does not match the wallet's public key", wallet_id=wallet_id)
    return seed


def reseal_secret(
    keyring: MasterKeyring,
    sealed: str,
    *,
    marketplace_id: str,
    wallet_id: str,
    public_key: str,
) -> SealedSecret:
    """Rotation: open with whichever version sealed it, seal again with the newest."""
    seed = open_secret(
        keyring, sealed, marketplace_id=marketplace_id, wallet_id=wallet_id, public_key=public_key
    )
    return seal_secret(
        keyring, seed, marketplace_id=marketplace_id, wallet_id=wallet_id, public_key=public_key
    )


def generate_wallet_keys(
    keyring: MasterKeyring, *, marketplace_id: str, wallet_id: str
) -> NewWalletKeys:
    """A new random Stellar keypair for a wallet, returned as public key + sealed seed."""
    keypair = Keypair.random()
    sealed = seal_secret(
        keyring,
        SecretSeed.from_keypair(keypair),
        marketplace_id=marketplace_id,
        wallet_id=wallet_id,
        public_key=keypair.public_key,
    )
    return NewWalletKeys(public_key=keypair.public_key, sealed=sealed)


def self_test(keyring: MasterKeyring) -> None:
    """Seal and open a throwaway seed with every version; run at start-up and fail closed.

    Raises:
        WalletKeyError: the cipher does not round-trip (no CPU support, corrupt keys).
    """
    probe = Keypair.random()
    seed = SecretSeed.from_keypair(probe)
    ids = {"marketplace_id": "self-test", "wallet_id": "self-test", "public_key": probe.public_key}
    aad = _associated_data(ids["marketplace_id"], ids["wallet_id"], ids["public_key"])
    for version in keyring.versions:
        sealed = _seal(keyring.cipher(version), version, seed, aad)
        if open_secret(keyring, sealed.text, **ids) != seed:
            _fail("the wallet key self-test did not round-trip", key_version=version)
