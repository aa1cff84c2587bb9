"""The hub's tables (SQLAlchemy Core), for SQLite and PostgreSQL alike.

Alembic migrations in `hub/migrations/` create and change them; this module
is what the code queries. Money is integer cents (BigInteger); timestamps are
Unix seconds; months are "YYYY-MM".

The ledger is double-entry: every movement is an `entries` row with postings
that sum to zero, and `ledger_accounts.balance_cents` is kept in the same
transaction. A CHECK refuses a negative balance unless the account is one of
the outside world's (a payment provider), so no person, creator or escrow
ever goes below zero, however requests interleave.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# A 64-bit id on PostgreSQL; on SQLite an INTEGER PRIMARY KEY (the rowid) is already one.
Id = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A person's (or creator's) account, keyed by the wallet's Ed25519 public key
# (43 characters of base64url).
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("nonprofit", Boolean, nullable=False, server_default=text("false")),
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("name", String(600), primary_key=True),
    Column("balance_cents", BigInteger, nullable=False, server_default=text("0")),
    Column("may_go_negative", Boolean, nullable=False, server_default=text("false")),
    CheckConstraint("may_go_negative OR balance_cents >= 0", name="not_negative"),
)

entries = Table(
    "entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("ref", String(700), nullable=False),  # what it is for; unique per kind
    Column("created_at", BigInteger, nullable=False),
    Column("reverses", Id, ForeignKey("entries.id"), nullable=True),
    UniqueConstraint("kind", "ref"),
)

postings = Table(
    "postings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=False, index=True),
    Column(
        "ledger_account",
        String(600),
        ForeignKey("ledger_accounts.name"),
        nullable=False,
        index=True,
    ),
    Column("amount_cents", BigInteger, nullable=False),
)

# Replay protection: a signed request's nonce is accepted once per account.
nonces = Table(
    "nonces",
    metadata,
    Column("account", String(64), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False, index=True),
    PrimaryKeyConstraint("account", "nonce"),
)

deposits = Table(
    "deposits",
    metadata,
    Column("id", String(64), primary_key=True),  # the client's UUID: idempotent
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("method", String(16), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("fee_cents", BigInteger, nullable=False),
    Column("provider_ref", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=False),
)

settlements = Table(
    "settlements",
    metadata,
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("month", String(7), nullable=False),
    Column("document", Text, nullable=False),
    Column("signature", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("spend_cents", BigInteger, nullable=False),
    # As its document says (migration 0008): paid as tokens, naming no creator.
    Column("unlinkable", Boolean, nullable=False, server_default=text("false")),
    Column("receipt", Text, nullable=False),
    Column("receipt_signature", String(128), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account", "month"),
)
Index("ix_settlements_month", settlements.c.month)

# Direct transfers: one per (account, client id), the request's hash (the
# same id again with another body is refused) and the hub's signed receipt.
# Their money is in `allocations` (transfer_id), routed as a flattr's.
transfers = Table(
    "transfers",
    metadata,
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("id", String(64), nullable=False),
    Column("month", String(7), nullable=False),
    Column("creator", String(600), nullable=False),
    Column("cents", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("receipt", Text, nullable=False),
    Column("receipt_signature", String(128), nullable=False),
    Column("received_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("account", "id"),
)

# One row per (creator account, month): whether it gave that month ("to
# receive, you must give"). Settlements crediting it and its own settlement
# lock this row, so money is never withheld after the creator has given.
giving = Table(
    "giving",
    metadata,
    Column("account", String(64), nullable=False),
    Column("month", String(7), nullable=False),
    Column("gave", Boolean, nullable=False, server_default=text("false")),
    PrimaryKeyConstraint("account", "month"),
)

# A creator key and who has proved it (NULL while nobody has). Settlements
# crediting the key and its verification lock this row.
creator_keys = Table(
    "creator_keys",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("owner", String(64), ForeignKey("accounts.id"), nullable=True, index=True),
    Column("verified_at", BigInteger, nullable=True),
    Column("method", String(32), nullable=True),
)

claims = Table(
    "claims",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("key", String(600), nullable=False, index=True),
    Column("token", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # pending | verified
    Column("created_at", BigInteger, nullable=False),
    Column("verified_at", BigInteger, nullable=True),
    Column("proof", String(2048), nullable=True),  # where the proof was found
)

# Every allocation of every settlement, and where its money went.
allocations = Table(
    "allocations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),  # the giver
    Column("month", String(7), nullable=False),
    Column("creator", String(600), nullable=False),
    Column("url", String(2048), nullable=True),  # NULL in private settlements
    Column("cents", BigInteger, nullable=False),
    # pending (accepted, not yet routed by a payout run) | credited | withheld
    # | escrow | returned
    Column("state", String(16), nullable=False),
    Column("recipient", String(64), nullable=True),  # the creator account, once known
    Column("fee_cents", BigInteger, nullable=True),
    Column("settled_at", BigInteger, nullable=True),
    # The month whose giving releases it, while withheld (the giver's month, or
    # the month an escrow was released in).
    Column("withheld_month", String(7), nullable=True),
    # Set for a direct transfer's money (its client id); NULL for a settlement's.
    Column("transfer_id", String(64), nullable=True),
)
# A giver's settlement's rows; look-ups by creator key read money in escrow,
# look-ups by recipient routed money (migration 0013): an accepted
# allocation enters neither of the last two.
Index("ix_allocations_account_month", allocations.c.account, allocations.c.month)
Index(
    "ix_allocations_escrow",
    allocations.c.creator,
    allocations.c.month,
    postgresql_where=text("state = 'escrow'"),
    sqlite_where=text("state = 'escrow'"),
)
Index(
    "ix_allocations_routed",
    allocations.c.recipient,
    allocations.c.month,
    postgresql_where=text("recipient IS NOT NULL"),
    sqlite_where=text("recipient IS NOT NULL"),
)
# What a payout run looks for (migration 0004): pending rows in order, and
# withheld rows by the (owner, month) whose giving releases them.
Index(
    "ix_allocations_pending",
    allocations.c.id,
    postgresql_where=text("state = 'pending'"),
    sqlite_where=text("state = 'pending'"),
)
Index(
    "ix_allocations_withheld",
    allocations.c.recipient,
    allocations.c.withheld_month,
    postgresql_where=text("state = 'withheld'"),
    sqlite_where=text("state = 'withheld'"),
)

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("provider_ref", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("entry_id", Id, ForeignKey("entries.id"), nullable=False),
)

# Public counters: how many people flattred a thing, how many flatter a
# creator, counted when read; one account counts once. Both keys are hashes
# (hub/counting.py, migration 0014): a kind's letter and 15 bytes of the
# subject's SHA-256; 8 bytes of the account's.
counter_people = Table(
    "counter_people",
    metadata,
    Column("subject", LargeBinary(16), nullable=False),
    Column("person", BigInteger, nullable=False),
    PrimaryKeyConstraint("subject", "person"),
)

# Unlinkable contributions (hub/tokens.py). One RSA-2048 key per month and
# denomination, made when the month's keys are first asked for; every hub
# process reads them from here.
token_keys = Table(
    "token_keys",
    metadata,
    Column("id", String(64), primary_key=True),  # token_key_id (RFC 9578), hex
    # The id versions before 0011 gave it (SHA-256 of the plain SPKI): tokens
    # they signed carry it. NULL for keys made since.
    Column("plain_id", String(64), unique=True),
    Column("month", String(7), nullable=False),
    Column("denomination_cents", BigInteger, nullable=False),
    Column("public_key", Text, nullable=False),  # SubjectPublicKeyInfo (as made), DER, base64url
    Column("private_key", Text, nullable=False),  # PKCS#8, PEM
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("month", "denomination_cents"),
)

# Who was issued tokens for what (a month's spend): the account, never the
# creators. `sha256` is the issuance request's; the same one again is
# answered again (RSA signing is deterministic), another is refused.
token_issues = Table(
    "token_issues",
    metadata,
    Column("account", String(64), nullable=False),
    Column("ref", String(80), nullable=False),  # month:YYYY-MM
    Column("month", String(7), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("cents", BigInteger, nullable=False),
    Column("tokens", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # to the hour
    # The first answer's blind signatures (base64url, concatenated in the
    # request's order), sent again to a repeat; NULL once the month expired.
    Column("answer", Text, nullable=True),
    PrimaryKeyConstraint("account", "ref"),
)

# Spent tokens: what a token went to, never who had it. `id` is the SHA-256
# of its key id and nonce, so a token is spent once across every process.
spent_tokens = Table(
    "spent_tokens",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("month", String(7), nullable=False),
    Column("creator", String(600), nullable=False),
    Column("creator_hash", String(64), nullable=False),  # sha256 hex, for the counters
    Column("cents", BigInteger, nullable=False),
    Column("redeemed_at", BigInteger, nullable=False),  # to the hour
)
Index("ix_spent_tokens_creator_hash", spent_tokens.c.creator_hash)

# Encrypted records (hub/records.py): ciphertext a daemon keeps here for its
# own restore, under slots it names with a key the hub never sees. No time is
# kept: the hub has no use for when a record last changed.
records = Table(
    "records",
    metadata,
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("slot", String(64), nullable=False),  # hex: HMAC of the record's name
    Column("version", BigInteger, nullable=False),
    Column("data", Text, nullable=False),  # base64url of nonce || AES-GCM ciphertext
    PrimaryKeyConstraint("account", "slot"),
)

# Devices (hub/devices.py): the keys that act for an account besides its own,
# with the day each was added and removed (no time of day, no name: a
# device's name travels in the account's encrypted records). A key belongs to
# one account, and a removed key never comes back.
devices = Table(
    "devices",
    metadata,
    Column("device", String(64), primary_key=True),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("added_day", String(10), nullable=False),  # YYYY-MM-DD, UTC
    Column("removed_day", String(10), nullable=True),
)
Index("ix_devices_account", devices.c.account)

# Invitations for a new device (hub/devices.py): sealed under a one-time code
# the hub never sees, taken once, gone after `expires_at` (Unix seconds).
invites = Table(
    "invites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account", String(64), ForeignKey("accounts.id"), nullable=False),
    Column("data", Text, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
