"""Creators and claims, as the person's side sees them: the hub's published
list of who has joined (downloaded whole, never asked about one key), and the
person's own keys, which they never flattr themselves. `policy` is pure,
`room` holds the list in memory (it has no table: the keys live in the
wallet's settings)."""
