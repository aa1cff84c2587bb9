"""The encrypted wallet: authentication, caps, atomic writes."""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from daemon.files import DataDir
from daemon.wallet import (
    HEADER,
    MAX_MEMORY_KIB,
    TEST_KDF,
    KdfParams,
    Settings,
    Wallet,
    WalletError,
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
