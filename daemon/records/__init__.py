"""Encrypted records at the hub (DESIGN.md, "The wallet over a machine's life").

What this daemon alone holds and money depends on is also kept at the hub,
sealed with a key only the wallet's seed gives, so that `mecene restore` on a
new machine gets it back:

    state    settings (but the backup folder), subscriptions, every month
             past the open one (closed and not yet acknowledged: with its
             signed document; settled: with the hub's receipt), every gift
             with its receipt
    tokens   unlinkable tokens not yet redeemed, of the last months

Steps: `seal.py` turns a record into padded ciphertexts (pure), `sql.py`
reads a record from the database and merges one back (SQL only), `link.py`
sends and fetches them (the only part that talks to the hub). What the hub
learns: that the account changed one of its records, within the hour (the
state) or at its token issuance (the tokens), and a size among three.
"""
