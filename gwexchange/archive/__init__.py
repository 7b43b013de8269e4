"""The archive: each node's Merkle log of what it accepted, signed tree heads, and the auditor's checks of them."""
