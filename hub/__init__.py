"""The Mécène hub: accounts, deposits, settlements, creators, payouts, counters."""
