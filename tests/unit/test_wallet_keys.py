"""Wallet key custody: sealing, opening, binding to the row, rotation and redaction."""

import base64
import logging
import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stellar_sdk import Keypair

from providers.stellar.wallet_keys import (
    MasterKeyring,
    SecretSeed,
    WalletKeyError,
    generate_wallet_keys,
    open_secret,
    reseal_secret,
    seal_secret,
    self_test,
)

MARKETPLACE = "mkt_" + "M" * 32
WALLET = "wal_" + "W" * 32
OTHER_WALLET = "wal_" + "X" * 32
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))


@pytest.fixture
def keyring() -> MasterKeyring:
    return MasterKeyring({1: KEY_1})


def _open(
    keyring: MasterKeyring, text: str, public_key: str, wallet_id: str = WALLET
) -> SecretSeed:
    return open_secret(
        keyring, text, marketplace_id=MARKETPLACE, wallet_id=wallet_id, public_key=public_key
    )


def test_round_trip(keyring: MasterKeyring) -> None:
    keys = generate_wallet_keys(keyring, marketplace_id=MARKETPLACE, wallet_id=WALLET)
    assert keys.sealed.text.startswith("v1:")
    assert keys.sealed.key_version == 1
    seed = _open(keyring, keys.sealed.text, keys.public_key)
    assert seed.keypair().public_key == keys.public_key


def test_each_seal_uses_a_fresh_nonce(keyring: MasterKeyring) -> None:
    keypair = Keypair.random()
    seed = SecretSeed.from_keypair(keypair)
    texts = {
        seal_secret(
            keyring,
            seed,
            marketplace_id=MARKETPLACE,
            wallet_id=WALLET,
            public_key=keypair.public_key,
        ).text
        for _ in range(5)
    }
    assert len(texts) == 5


def test_secret_moved_to_another_wallet_fails(keyring: MasterKeyring) -> None:
    keys = generate_wallet_keys(keyring, marketplace_id=MARKETPLACE, wallet_id=WALLET)
    with pytest.raises(WalletKeyError, match="authentication"):
        _open(keyring, keys.sealed.text, keys.public_key, wallet_id=OTHER_WALLET)


def test_secret_under_another_public_key_fails(keyring: MasterKeyring) -> None:
    keys = generate_wallet_keys(keyring, marketplace_id=MARKETPLACE, wallet_id=WALLET)
    with pytest.raises(WalletKeyError):
        _open(keyring, keys.sealed.text, Keypair.random().public_key)


@pytest.mark.parametrize("position", [0, 12, 30, -1])
def test_tampered_ciphertext_fails(keyring: MasterKeyring, position: int) -> None:
    keys = generate_wallet_keys(keyring, marketplace_id=MARKETPLACE, wallet_id=WALLET)
    prefix, _, body = keys.sealed.text.partition(":")
    blob = bytearray(base64.b64decode(body))
    blob[position] ^= 0x01
    tampered = f"{prefix}:{base64.b64encode(bytes(blob)).decode()}"
    with pytest.raises(WalletKeyError, match="authentication"):
        _open(keyring, tampered, keys.public_key)


@pytest.mark.parametrize("text", ["", "v1", "v1:", "1:AAAA", "v0:AAAA", "v1:!!!!", "v1:AAAA"])
def test_malformed_text_fails(keyring: MasterKeyring, text: str) -> None:
    with pytest.raises(WalletKeyError):
        _open(keyring, text, Keypair.random().public_key)


def test_unknown_version_refuses_to_open(keyring: MasterKeyring) -> None:
    newer = MasterKeyring({1: KEY_1, 2: KEY_2})
    keys = generate_wallet_keys(newer, marketplace_id=MARKETPLACE, wallet_id=WALLET)
    assert keys.sealed.key_version == 2
    with pytest.raises(WalletKeyError, match="no master key") as failure:
        _open(keyring, keys.sealed.text, keys.public_key)
    assert failure.value.details["key_version"] == 2


def test_rotation_opens_old_and_seals_with_newest() -> None:
    old = MasterKeyring({1: KEY_1})
    keys = generate_wallet_keys(old, marketplace_id=MARKETPLACE, wallet_id=WALLET)
    rotated = MasterKeyring({1: KEY_1, 2: KEY_2})
    assert rotated.active_version == 2
    # Both versions are accepted on open.
    seed = _open(rotated, keys.sealed.text, keys.public_key)
    resealed = reseal_secret(
        rotated,
        keys.sealed.text,
        marketplace_id=MARKETPLACE,
        wallet_id=WALLET,
        public_key=keys.public_key,
    )
    assert resealed.text.startswith("v2:")
    assert resealed.key_version == 2
    # Once version 1 is retired, only the resealed text still opens.
    retired = MasterKeyring({2: KEY_2})
    assert _open(retired, resealed.text, keys.public_key) == seed
    with pytest.raises(WalletKeyError):
        _open(retired, keys.sealed.text, keys.public_key)


def test_wrong_master_key_for_the_version_fails() -> None:
    keys = generate_wallet_keys(
        MasterKeyring({1: KEY_1}), marketplace_id=MARKETPLACE, wallet_id=WALLET
    )
    with pytest.raises(WalletKeyError, match="authentication"):
        _open(MasterKeyring({1: KEY_2}), keys.sealed.text, keys.public_key)


def test_secret_never_shows_in_repr_str_logs_or_errors(
    keyring: MasterKeyring, caplog: pytest.LogCaptureFixture
) -> None:
    keypair = Keypair.random()
    seed = SecretSeed.from_keypair(keypair)
    secret_forms = [keypair.secret, keypair.raw_secret_key().hex(), str(keypair.raw_secret_key())]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("seed %s %r in %s", seed, seed, [seed])
    shown = [repr(seed), str(seed), f"{seed}", repr([seed]), repr(keyring), caplog.text]
    try:
        seal_secret(keyring, seed, marketplace_id=MARKETPLACE, wallet_id=WALLET, public_key=WALLET)
    except WalletKeyError as error:
        shown += [str(error), repr(error), repr(error.details)]
    for text in shown:
        assert all(form not in text for form in secret_forms)
    assert repr(seed) == "SecretSeed(<redacted>)"
    assert repr(keyring) == "MasterKeyring(versions=(1,))"
    with pytest.raises(TypeError):
        pickle.dumps(seed)


def test_keyring_from_text_and_validation() -> None:
    text = f"1:{base64.b64encode(KEY_1).decode()}, 2:{base64.b64encode(KEY_2).decode()}"
    keyring = MasterKeyring.from_text(text)
    assert keyring.versions == (1, 2)
    assert keyring.active_version == 2
    self_test(keyring)
    for bad in ["", "x:AAAA", "1:not-base64!", f"1:{base64.b64encode(b'short').decode()}"]:
        with pytest.raises(WalletKeyError) as failure:
            MasterKeyring.from_text(bad)
        assert "short" not in str(failure.value)
    with pytest.raises(WalletKeyError):
        MasterKeyring({0: KEY_1})


@settings(max_examples=50, deadline=None)
@given(
    seed_bytes=st.binary(min_size=32, max_size=32),
    master=st.binary(min_size=32, max_size=32),
    version=st.integers(min_value=1, max_value=10_000),
    wallet_body=st.text(alphabet="0123456789ABCDEFabcdef", min_size=32, max_size=32),
)
def test_round_trip_property(
    seed_bytes: bytes, master: bytes, version: int, wallet_body: str
) -> None:
    keyring = MasterKeyring({version: master, version + 1: os.urandom(32)})
    seed = SecretSeed(seed_bytes)
    public_key = seed.keypair().public_key
    wallet_id = "wal_" + wallet_body
    sealed = seal_secret(
        keyring, seed, marketplace_id=MARKETPLACE, wallet_id=wallet_id, public_key=public_key
    )
    assert sealed.key_version == version + 1
    assert _open(keyring, sealed.text, public_key, wallet_id=wallet_id) == seed
