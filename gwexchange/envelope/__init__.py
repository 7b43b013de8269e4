"""The document and its envelope: the GB/T 9704 model, its XML form and schemas, signing, sealing, receipts and
packages."""
