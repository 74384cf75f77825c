"""The per-tenant verifiable audit log.

Every agent run writes what it did (started, tool invoked or refused, completed,
halted) and every deletion to its tenant's own append-only log. Each log is an
RFC 6962 Merkle tree whose heads are signed as C2SP checkpoints with Ed25519, so a
tenant or an auditor can check offline that nothing was changed, removed or slipped
in. Events hold no secrets and no tenant content: content appears only as salted
digests, and deleting a tenant's salt (``shred``) unlinks them for good.

Modules: ``events`` (event types, the canonical encoding), ``log`` (``AuditLog``),
``verify`` (checking, proofs), ``bundle`` (export, offline check),
``keys`` (the signing key), ``store`` and ``tables`` (storage).
"""
