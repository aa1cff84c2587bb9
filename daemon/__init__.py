"""Mécène's daemon: the person's wallet, flattrs and months, on 127.0.0.1."""

__version__ = "0.1.0"
