"""The protocol the daemon and the hub speak, pure (DESIGN.md, "One package,
one protocol"): creator keys and things' URLs (`keys`), months and the clock
(`time`), canonical JSON and base64url (`encoding`), request signing
(`signing`), money constants, fees and the largest-remainder split
(`money`), and amounts as a person reads them (`amounts`).

It imports neither side and no I/O library; `daemon/` and `hub/` import it
and never each other (the daemon's embedded hub, `daemon/runner.py`, is the
one declared exception). The import contract in `pyproject.toml`
(import-linter, run by `scripts/test`) keeps it so.
"""
