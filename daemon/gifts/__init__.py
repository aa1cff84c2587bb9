"""Gifts (direct transfers): a one-off amount to one creator, outside the
month's split. Recorded durably first (`sending`), then sent until the hub
answers: `given` with its receipt, or `refused` with its reason. `policy` is
pure, `sql` every statement on `transfers`, `room` records and lists them,
`sending` takes them to the hub (as tokens when the wallet is unlinkable)."""
