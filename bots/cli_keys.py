"""``tenantry keys``: the encryption keys that protect secrets at rest.

Rotation is two steps: a new key goes first in the keyring (the embedded key file is
changed here; ``TENANTRY_ENCRYPTION_KEYS`` only the operator can change), then every
stored credential is re-encrypted under it. Older keys keep decrypting until removed.
"""

from __future__ import annotations

import click

from bots.cli_credentials import open_store
from bots.cli_support import root_settings, run_async
from core.audit.keys import KEY_NAME
from core.crypto import generate_key
from core.signed_note import generate_key as generate_signing_key
from installs.slack_store import SlackInstallationStore


@click.group()
def keys() -> None:
    """Generate and rotate the encryption keys of stored secrets.

    Example: tenantry keys rotate
    """


@keys.command("generate")
@click.option("--audit", is_flag=True,
              help="An Ed25519 checkpoint signing key, for TENANTRY_AUDIT_SIGNING_KEY, "
                   "instead of an encryption key.")
def keys_generate(audit: bool) -> None:
    """Print a fresh Fernet key, for TENANTRY_ENCRYPTION_KEYS (or, with --audit, a
    signing key).

    Example: tenantry keys generate --audit
    """
    click.echo(generate_signing_key(KEY_NAME)[0] if audit else generate_key())


@keys.command("rotate")
@click.option("--new-key/--no-new-key", default=True, show_default=True,
              help="Add a new key to the embedded key file first; --no-new-key only "
                   "re-encrypts (e.g. to finish an interrupted rotation).")
@run_async
async def keys_rotate(new_key: bool) -> None:
    """Put a new key first, then re-encrypt every stored secret (credentials, Slack tokens).

    Example: tenantry keys rotate --no-new-key
    """
    async with open_store(root_settings()) as store:
        keyring = store.keyring
        total = await store.count()
        if keyring.path is None:
            click.echo(
                f"keys come from {keyring.source}: to rotate, prepend a new key there "
                "(`tenantry keys generate`) on every process and restart them first; "
                f"re-encrypting under the newest of its {keyring.key_count} keys"
            )
        elif new_key:
            keyring.add_key()
            click.echo(f"added a new key to {keyring.path} (now {keyring.key_count} keys)")
        rotated = await store.rotate_all()
        tokens = await SlackInstallationStore(store.db, keyring).rotate_all(keyring)
    click.echo(f"re-encrypted {rotated} of {total} credentials under the newest key")
    click.echo(f"re-encrypted {tokens} Slack tokens under the newest key")
