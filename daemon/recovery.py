"""The recovery phrase: the wallet's 32-byte seed as 24 BIP-39 words.

BIP-39's English list and checksum, from Trezor's maintained `mnemonic`
library: 24 words carry the 256 bits and an 8-bit checksum, so a word
written down wrong is caught (one time in 256 it is not: then the restored
account is another, empty one, and the person is shown its account key to
compare). Only the entropy encoding is used; BIP-39's PBKDF2 "seed" (for
hierarchical wallets) is not: the entropy is the Ed25519 seed itself
(DESIGN.md, "The wallet over a machine's life").
"""

from __future__ import annotations

import unicodedata

from mnemonic import Mnemonic

WORDS = 24
_ENGLISH = Mnemonic("english")


class PhraseError(ValueError):
    """The phrase cannot be a recovery phrase; the message says what is wrong."""


def phrase_of(seed: bytes) -> str:
    if len(seed) != 32:
        raise ValueError("a seed is 32 bytes")
    return str(_ENGLISH.to_mnemonic(seed))


def seed_of(phrase: str) -> bytes:
    """The seed a phrase encodes. Case, accents' composition, extra spaces and
    line breaks do not matter; an unknown word, a missing one or a wrong one
    (the checksum) is refused with the reason."""
    words = unicodedata.normalize("NFKD", phrase).lower().split()
    if len(words) != WORDS:
        raise PhraseError(f"a recovery phrase has {WORDS} words; this has {len(words)}")
    known = set(_ENGLISH.wordlist)
    unknown = [f"{i}: {w!r}" for i, w in enumerate(words, 1) if w not in known]
    if unknown:
        raise PhraseError(
            "not in the recovery word list (BIP-39, English): word " + ", word ".join(unknown[:3])
        )
    if not _ENGLISH.check(" ".join(words)):
        raise PhraseError("the phrase's checksum does not match: a word is wrong or out of order")
    return bytes(_ENGLISH.to_entropy(" ".join(words)))


def grouped(phrase: str) -> str:
    """The phrase as a person copies it: numbered, six words a line."""
    words = phrase.split()
    lines = []
    for start in range(0, len(words), 6):
        lines.append(
            "  ".join(f"{i:2}. {w:<8}" for i, w in enumerate(words[start : start + 6], start + 1))
        )
    return "\n".join(line.rstrip() for line in lines)
