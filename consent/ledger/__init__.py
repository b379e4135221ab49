"""The consent ledger: the hash chain, the pure projection, the write kernel (recording), the replay and its
verification."""
