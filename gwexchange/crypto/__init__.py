"""Cryptography without I/O: algorithms and suites, keys, certificates, the trust policy, XML-DSig, XML Encryption."""
