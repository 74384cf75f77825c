"""Tenant memory as vectors: chunks of a tenant's documents, searchable in its partition only.

``base`` holds the contract (``VectorStore``, ``VectorItem``, ``Match``) and how a
tenant's partition is named and vetted; ``embedded`` keeps vectors in the app database,
``pinecone_store`` in a Pinecone namespace per tenant, and ``partition_cache`` keeps
the embedded store's partition matrices in memory between searches; ``embeddings``
turns text into vectors and ``chunking`` cuts documents into chunks; ``tables`` holds
the schema.

Import from those modules: the package imports none of them, so whoever needs the
tables or the contract does not load the stores, and the embedded default never
loads Pinecone's SDK.
"""
