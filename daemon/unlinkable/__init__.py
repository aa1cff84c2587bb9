"""Unlinkable contributions, the daemon's side (DESIGN.md, "Unlinkable
contributions"; the hub's side is hub/tokens.py, the format mecene/tokens.py).

A month closed with the `unlinkable` setting is settled as its spend alone.
Its split stays here: each creator's share is cut into tokens (`plan`, in
the transaction that closes the month). Once the hub has the settlement:

1. the month's keys are fetched and checked (`GET /v1/token-keys/{month}`);
2. every planned token is blinded, and everything needed to finish it is
   written down before the hub is asked (`blinded`);
3. the hub signs them blindly (`POST /v1/tokens`, signed as the account).
   The same request again gets the same answer, so a crash between the
   hub's answer and our write only means asking again;
4. each signature is unblinded and checked, and the token gets a time to be
   redeemed, at random within the window (`ready`);
5. when its time comes, each token is redeemed to its creator
   (`POST /v1/tokens/redeem`) with no account, no signature, no cookie, over
   a connection of its own, closed after it (`redeemed`). A token's creator
   is fixed when it is planned, so a retry after a crash sends it to the
   same creator, which the hub answers again; never to another.

A direct transfer's tokens carry its id (`transfer_id`) and the hub's month
of the moment it was made, so a gift in a month's last minute shares its
month with that month's own tokens: every query of a month's own tokens
says `transfer_id IS NULL`, and a gift's are issued by its own request.

Here: `policy` (pure: the tokens' states, their plan, when each is
redeemed, what the hub's answer to a redemption means, the rows' codecs),
`sql` (every statement on `unlinkable_tokens`), `link` (the driver that
talks to the hub; the only part that imports aiohttp).
"""
