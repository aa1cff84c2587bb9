"""The encrypted wallet: authentication, caps, atomic writes."""

from __future__ import annotations

import json
import os
import secrets
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon import recovery
from daemon.files import DataDir
from daemon.wallet import (
    HEADER,
    HEADER_V1,
    MAX_MEMORY_KIB,
    TEST_KDF,
    KdfParams,
    Settings,
    Wallet,
    WalletDamaged,
    WalletError,
    WalletTooNew,
    WrongPassphrase,
    unb64u,
)
from tests.support.constants import LARGE, PASSPHRASE, battery_size


def test_round_trip_keeps_key_and_settings(wallet: Wallet, data_dir: DataDir) -> None:
    again = Wallet.open(data_dir.wallet, PASSPHRASE)
    assert again.account == wallet.account
    assert again.settings == wallet.settings
    signature = again.sign(b"hello")
    Ed25519PublicKey.from_public_bytes(unb64u(wallet.account)).verify(unb64u(signature), b"hello")


def test_file_and_directory_permissions(wallet: Wallet, data_dir: DataDir) -> None:
    assert stat.S_IMODE(os.stat(data_dir.wallet).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data_dir.root).st_mode) == 0o700


def test_wrong_passphrase_is_an_authentication_error(wallet: Wallet, data_dir: DataDir) -> None:
    with pytest.raises(WrongPassphrase):
        Wallet.open(data_dir.wallet, "not the passphrase")


def test_every_single_byte_change_is_rejected(wallet: Wallet, data_dir: DataDir) -> None:
    """Battery: each byte of the file changed (two flips each in the suite,
    all 255 other values in the large run), each refused with a wallet error
    — an authentication failure or a refused header — never garbage."""
    blob = data_dir.wallet.read_bytes()
    tampered = data_dir.root / "tampered"
    changes = range(1, 256) if LARGE else (0x01, 0x80)
    tried = 0
    for i in range(len(blob)):
        for flip in changes:
            changed = bytearray(blob)
            changed[i] ^= flip
            tampered.write_bytes(bytes(changed))
            with pytest.raises(WalletError):
                Wallet.open(tampered, PASSPHRASE)
            tried += 1
    assert tried == len(blob) * len(changes)


def test_a_thousand_wrong_passphrases_are_each_an_authentication_error(
    wallet: Wallet, data_dir: DataDir
) -> None:
    import random

    rng = random.Random(1)
    alphabet = "abcdefghijklmnopqrstuvwxyzÀéü€ 0123456789!?"
    count = battery_size(1000, 1000)
    for n in range(count):
        guess = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        if guess == PASSPHRASE:
            continue
        with pytest.raises(WrongPassphrase):
            Wallet.open(data_dir.wallet, guess if n % 7 else PASSPHRASE[:-1])
    assert Wallet.open(data_dir.wallet, PASSPHRASE).account == wallet.account


def test_truncated_and_extended_files_are_rejected(wallet: Wallet, data_dir: DataDir) -> None:
    blob = data_dir.wallet.read_bytes()
    other = data_dir.root / "other"
    for variant in (blob[:-1], blob[:10], b"", blob + b"\x00"):
        other.write_bytes(variant)
        with pytest.raises(WalletError):
            Wallet.open(other, PASSPHRASE)


@pytest.mark.parametrize(
    ("memory_kib", "iterations", "lanes"),
    [(MAX_MEMORY_KIB * 4, 3, 4), (65536, 1000, 4), (65536, 3, 255), (4, 1, 1), (65536, 0, 4)],
)
def test_costly_or_invalid_kdf_parameters_are_refused_before_deriving(
    wallet: Wallet, data_dir: DataDir, memory_kib: int, iterations: int, lanes: int
) -> None:
    blob = bytearray(data_dir.wallet.read_bytes())
    struct.pack_into(">III", blob, 10, memory_kib, iterations, lanes)
    data_dir.wallet.write_bytes(bytes(blob))
    with pytest.raises(WalletError, match="key derivation"):
        Wallet.open(data_dir.wallet, PASSPHRASE)


def test_settings_are_saved_atomically_and_survive(wallet: Wallet, data_dir: DataDir) -> None:
    before = data_dir.wallet.read_bytes()
    wallet.update_settings(budget_cents=1000, private=True)
    after = data_dir.wallet.read_bytes()
    assert before[: HEADER.size - 12] == after[: HEADER.size - 12]  # same salt and parameters
    assert before[HEADER.size - 12 : HEADER.size] != after[HEADER.size - 12 : HEADER.size]
    reopened = Wallet.open(data_dir.wallet, PASSPHRASE)
    assert reopened.settings.budget_cents == 1000 and reopened.settings.private
    assert not [p for p in data_dir.root.iterdir() if p.name.endswith(".tmp")]


def test_bad_settings_are_refused_and_nothing_is_written(wallet: Wallet, data_dir: DataDir) -> None:
    before = data_dir.wallet.read_bytes()
    for change in (
        {"budget_cents": 199},
        {"time_zone": "Mars/Olympus"},
        {"cap_cents": 100},
        {"charity": "javascript:alert(1)"},
    ):
        with pytest.raises(ValueError):
            wallet.update_settings(**change)
    assert data_dir.wallet.read_bytes() == before
    assert wallet.settings.budget_cents == 500


def test_create_refuses_short_passphrase_and_existing_file(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="at least"):
        Wallet.create(tmp_path / "w", "short", Settings(), kdf=TEST_KDF)
    Wallet.create(tmp_path / "w", PASSPHRASE, Settings(), kdf=TEST_KDF)
    with pytest.raises(WalletError, match="already exists"):
        Wallet.create(tmp_path / "w", PASSPHRASE, Settings(), kdf=TEST_KDF)


def test_default_kdf_parameters_are_within_the_caps() -> None:
    KdfParams().check()


# -- a machine's life: damaged files, other versions, a new passphrase (issue 26) ------


def test_a_truncated_wallet_is_damaged_not_a_wrong_passphrase(
    wallet: Wallet, data_dir: DataDir
) -> None:
    blob = data_dir.wallet.read_bytes()
    for cut in (len(blob) // 2, len(blob) - 1, HEADER.size + 3, 20, 9, 3):
        data_dir.wallet.write_bytes(blob[:cut])
        with pytest.raises(WalletDamaged, match=r"damaged.*mecene restore"):
            Wallet.open(data_dir.wallet, PASSPHRASE)
    data_dir.wallet.write_bytes(blob)
    with pytest.raises(WrongPassphrase):
        Wallet.open(data_dir.wallet, PASSPHRASE + "x")


def test_a_changed_byte_after_the_header_is_damage(wallet: Wallet, data_dir: DataDir) -> None:
    blob = bytearray(data_dir.wallet.read_bytes())
    blob[HEADER.size + 5] ^= 0x40
    data_dir.wallet.write_bytes(bytes(blob))
    with pytest.raises(WalletDamaged):
        Wallet.open(data_dir.wallet, PASSPHRASE)
    with pytest.raises(WrongPassphrase):  # a wrong passphrase is still said first
        Wallet.open(data_dir.wallet, "another passphrase")


def _format_1(path: Path, wallet: Wallet) -> None:
    """The wallet as versions before 0.10 wrote it (format 1: no key check,
    no `needs`), with the same key and body."""
    salt = secrets.token_bytes(16)
    key = TEST_KDF.derive(PASSPHRASE, salt)
    header = HEADER_V1.pack(
        b"MECENEW\x00",
        1,
        1,
        TEST_KDF.memory_kib,
        TEST_KDF.iterations,
        TEST_KDF.lanes,
        salt,
        secrets.token_bytes(12),
    )
    doc = json.loads(wallet.data.body())
    doc.pop("needs")
    doc["v"] = 1
    body = json.dumps(doc).encode()
    path.write_bytes(header + AESGCM(key).encrypt(header[-12:], body, header))


def test_a_format_1_wallet_opens_and_is_written_back_as_format_2(
    wallet: Wallet, data_dir: DataDir
) -> None:
    _format_1(data_dir.wallet, wallet)
    assert data_dir.wallet.read_bytes()[8] == 1
    again = Wallet.open(data_dir.wallet, PASSPHRASE)
    assert (again.account, again.settings) == (wallet.account, wallet.settings)
    assert data_dir.wallet.read_bytes()[8] == 2  # an older version now refuses it
    assert Wallet.open(data_dir.wallet, PASSPHRASE).account == wallet.account


def test_a_wallet_from_a_newer_version_is_refused_in_one_line(
    wallet: Wallet, data_dir: DataDir
) -> None:
    blob = bytearray(data_dir.wallet.read_bytes())
    blob[8] = 3
    data_dir.wallet.write_bytes(bytes(blob))
    with pytest.raises(WalletTooNew, match=r"newer version.*format 3"):
        Wallet.open(data_dir.wallet, PASSPHRASE)
    # A feature this version does not know, in a body that authenticates.
    data_dir.wallet.unlink()
    future = Wallet.create(data_dir.wallet, PASSPHRASE, Settings(), kdf=TEST_KDF)
    doc = json.loads(future.data.body())
    doc["needs"] = [*doc["needs"], "devices"]
    future.data.body = lambda: json.dumps(doc).encode()  # type: ignore[method-assign]
    future.save()
    with pytest.raises(WalletTooNew, match="it needs devices"):
        Wallet.open(data_dir.wallet, PASSPHRASE)


def test_a_new_passphrase_opens_the_wallet_and_the_old_one_no_longer_does(
    wallet: Wallet, data_dir: DataDir
) -> None:
    wallet.change_passphrase("a brand new passphrase", kdf=TEST_KDF)
    with pytest.raises(WrongPassphrase):
        Wallet.open(data_dir.wallet, PASSPHRASE)
    again = Wallet.open(data_dir.wallet, "a brand new passphrase")
    assert again.account == wallet.account
    wallet.update_settings(budget_cents=900)  # a later save keeps the new passphrase
    assert Wallet.open(data_dir.wallet, "a brand new passphrase").settings.budget_cents == 900
    with pytest.raises(WalletError, match="at least"):
        wallet.change_passphrase("short")


def test_the_recovery_phrase_brings_back_the_same_account(tmp_path: Path) -> None:
    first = Wallet.create(tmp_path / "a", PASSPHRASE, Settings(), kdf=TEST_KDF)
    phrase = recovery.phrase_of(first.data.seed)
    assert len(phrase.split()) == 24
    # As a person types it back: other case, line breaks, extra spaces.
    typed = "\n".join(
        "  ".join(w.upper() for w in phrase.split()[i : i + 6]) for i in (0, 6, 12, 18)
    )
    again = Wallet.create(
        tmp_path / "b", "another passphrase", kdf=TEST_KDF, seed=recovery.seed_of(typed)
    )
    assert again.account == first.account
    assert again.sign(b"m") == first.sign(b"m")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda w: w[:-1], "has 23"),
        (lambda w: [*w[:3], "bitcoinz", *w[4:]], "word 4: 'bitcoinz'"),
        (lambda w: [w[1], w[0], *w[2:]], "checksum"),
    ],
)
def test_a_mistyped_recovery_phrase_says_what_is_wrong(change: Any, reason: str) -> None:
    words = recovery.phrase_of(bytes(range(32))).split()
    if words[0] == words[1]:
        pytest.skip("swapping equal words changes nothing")
    with pytest.raises(recovery.PhraseError, match=reason):
        recovery.seed_of(" ".join(change(words)))


def test_the_phrase_is_bip39s_own_encoding() -> None:
    """BIP-39's published test vector (trezor/python-mnemonic vectors.json):
    entropy 0x7f × 32."""
    phrase = recovery.phrase_of(bytes([0x7F]) * 32)
    assert phrase == (
        "legal winner thank year wave sausage worth useful legal winner thank year wave "
        "sausage worth useful legal winner thank year wave sausage worth title"
    )
