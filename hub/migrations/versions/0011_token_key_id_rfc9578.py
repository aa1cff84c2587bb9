"""token_key_id as RFC 9578 defines it: SHA-256 of the key's RSASSA-PSS SPKI

Issue 27, point 10: the ids hashed the plain rsaEncryption encoding. Every
key gets its RFC id; the old one is kept in `plain_id`, because tokens
signed before this revision carry it inside their signed input and must
still redeem until their month expires. `spent_tokens.key_id` follows.

The encoding is written out here rather than imported from mecene/tokens.py,
so that this revision does the same thing whatever the code becomes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import base64
import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives import serialization

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_PSS = bytes.fromhex(
    "304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c"
    "301a06092a864886f70d010108300d06096086480165030402020500a203020130"
)


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _rfc_id(public_b64u: str) -> str:
    der = base64.urlsafe_b64decode(public_b64u + "=" * (-len(public_b64u) % 4))
    key = serialization.load_der_public_key(der)
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.sha256(_der(0x30, _PSS + _der(0x03, b"\x00" + pkcs1))).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("token_keys") as batch:
        batch.add_column(sa.Column("plain_id", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_token_keys_plain_id", ["plain_id"])
    conn = op.get_bind()
    for old, public in conn.execute(sa.text("SELECT id, public_key FROM token_keys")).all():
        new = _rfc_id(public)
        params = {"old": old, "new": new}
        conn.execute(
            sa.text("UPDATE token_keys SET id = :new, plain_id = :old WHERE id = :old"), params
        )
        conn.execute(sa.text("UPDATE spent_tokens SET key_id = :new WHERE key_id = :old"), params)


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.text("SELECT id, plain_id FROM token_keys WHERE plain_id IS NOT NULL")
    ).all()
    for new, old in rows:
        params = {"old": old, "new": new}
        conn.execute(sa.text("UPDATE token_keys SET id = :old WHERE id = :new"), params)
        conn.execute(sa.text("UPDATE spent_tokens SET key_id = :old WHERE key_id = :new"), params)
    with op.batch_alter_table("token_keys") as batch:
        batch.drop_constraint("uq_token_keys_plain_id", type_="unique")
        batch.drop_column("plain_id")
