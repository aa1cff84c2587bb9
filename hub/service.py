"""The hub's rooms, built once and named in one place (the composition root).

Each room is one lifecycle of the money that passes through the hub
(docs/ARCHITECTURE.md lists them, with their states):

    auth.py        Signatures   who is asking: signatures, nonces, accounts opened
    deposits.py    Deposits     an account's view, deposits in, withdrawals out
    settling.py    Settlements  a month's settlement accepted (accept.py), routed
                                later by the payout run (payout.py, routing.py)
    gifts.py       Transfers    a direct transfer, admitted at once (admission.py)
    tokens.py      TokenDesk    unlinkable tokens: keys, issuance, redemption
    creators.py    Creators     claims, proofs, flattr ids, escrow released or returned
    records.py     Records      encrypted records a daemon keeps here (ciphertext only)
    devices.py     Devices      the keys that act for an account, invitations for new ones
    reports.py     Reports      terms, counters, payouts, the books

All stand on one `HubCore` (engine, key, clock, provider, fetcher, config).
Every money movement is one ledger entry (ledger.py) in the same database
transaction as the rows that explain it; where money goes is the pure
`routing.route` / `routing.release`. Nothing here knows about HTTP: hub/http.py
parses a request with hub/requests.py (or mecene/tokenwire.py) and calls one
room's method.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from mecene.time import Clock

from .accept import Acceptor
from .admission import Admission
from .auth import Signatures
from .core import HubConfig, HubCore
from .creators import Creators
from .deposits import Deposits
from .devices import Devices
from .gateway import gateway_of
from .gifts import Transfers
from .proofs import ProofFetcher
from .provider import PaymentProvider
from .records import Records
from .reports import Reports
from .settling import Settlements
from .tokens import TokenDesk

__all__ = ["Hub", "HubConfig"]


class Hub:
    def __init__(
        self,
        engine: AsyncEngine,
        key: Ed25519PrivateKey,
        clock: Clock,
        provider: PaymentProvider,
        fetcher: ProofFetcher,
        config: HubConfig | None = None,
    ) -> None:
        core = self.core = HubCore(engine, key, clock, provider, fetcher, config)
        self.engine, self.key, self.clock, self.config = engine, key, clock, core.config
        self.provider, self.fetcher = provider, fetcher
        self.public_key = core.public_key
        self.payouts_wanted = core.payouts_wanted
        self.acceptor = Acceptor(
            engine, key.sign, core.public_key, core.now, on_accepted=core.payouts_wanted.set
        )
        self.tokens = TokenDesk(
            engine, core.now, core.month, core.config.escrow_months, key.sign, core.public_key
        )
        self.tokens.on_redeemed = core.payouts_wanted.set
        self.gateway = gateway_of(key)  # Oblivious HTTP (hub/gateway.py)
        self.auth = Signatures(core)
        self.admission = Admission(core)
        self.deposits = Deposits(core)
        self.settlements = Settlements(core, self.acceptor, self.tokens)
        self.transfers = Transfers(core, self.admission)
        self.creators = Creators(core, self.admission)
        self.reports = Reports(core)
        self.records = Records(core)
        self.devices = Devices(core)
        # What the runner, the CLI and the tests call most, by its old name.
        self.now, self.month = core.now, core.month
        self.run_payouts = self.settlements.run_payouts
        self.expire_escrow = self.creators.expire_escrow
        self.set_nonprofit = self.creators.set_nonprofit
        self.balance_of = self.reports.balance_of
        self.books = self.reports.books
        self.count = self.reports.count
        self.payouts = self.reports.payouts
        self.fees_cents = self.reports.fees_cents
        self.account_view = self.deposits.account_view
        self.deposit = self.deposits.deposit
        self.transfer = self.transfers.transfer
        self.spend_nonce = self.auth.spend_nonce
        self.forget_nonces = self.auth.forget_nonces
        self.check_signature = self.auth.check_signature
