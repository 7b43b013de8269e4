"""The file-backed PKI: the certificate authority in a folder, and key folders as ``gwx pki issue`` writes them."""
