"""Browsers and pairing: a browser asks to pair, the person approves its
code, the browser gets a bearer token (only its hash is kept), and may be
revoked. `pairing` is the pure policy of pending pairings, `sql` every
statement on the `tokens` table, `room` the driver (and who is calling)."""
