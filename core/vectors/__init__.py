"""Tenant memory as vectors: chunks of a tenant's documents, searchable in its partition only.

``base`` holds the contract and how a tenant's partition is named and vetted;
``embedded`` keeps vectors in the app database (with ``partition_cache``),
``pinecone_store`` in a Pinecone namespace per tenant; ``embeddings``, ``chunking``
and ``tables`` hold the rest. Import from those modules: the package imports none of
them, so the tables load no store, and the embedded default never loads Pinecone's SDK.
"""
