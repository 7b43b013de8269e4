"""Moving envelopes: the node's store, its SMTP listener and client, the daemon, bundles, and the clerk's commands."""
