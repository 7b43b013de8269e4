"""The network as the authority publishes it: the signed directory of nodes, departments and zones, and routes."""
