"""Claims: one encoding, signed; anything else about a payload is refused."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bots.jobs.claims import Claim, ClaimRefused, ClaimSigner
from core.errors import ConfigurationError

SIGNER = ClaimSigner(SecretStr("k1"))
CLAIM = Claim.of("run", "acme", {"run_id": "r1"})


def test_a_signed_claim_verifies_back_to_itself() -> None:
    payload = SIGNER.payload(CLAIM)
    assert set(payload) == {"kind", "tenant_id", "run_id", "mac"}
    assert SIGNER.verify(payload) == CLAIM


def test_the_encoding_is_canonical_whatever_the_order_of_the_ids() -> None:
    one = Claim.of("digest", "acme", {"digest_id": "d1", "fire_time": "2026-03-29T02:30Z"})
    other = Claim.of("digest", "acme", {"fire_time": "2026-03-29T02:30Z", "digest_id": "d1"})
    assert one.canonical() == other.canonical() and SIGNER.mac(one) == SIGNER.mac(other)
    assert one.id("digest_id") == "d1"


@pytest.mark.parametrize("change", [
    {"tenant_id": "globex"}, {"run_id": "r2"}, {"kind": "digest"}, {"extra": "x"},
    {"mac": "0" * 64},
])
def test_an_altered_or_forged_payload_is_refused(change: dict[str, str]) -> None:
    with pytest.raises(ClaimRefused) as refused:
        SIGNER.verify(SIGNER.payload(CLAIM) | change)
    assert refused.value.reason == "bad_signature"


def test_another_deployments_key_does_not_verify() -> None:
    with pytest.raises(ClaimRefused, match="bad_signature"):
        ClaimSigner(SecretStr("k2")).verify(SIGNER.payload(CLAIM))


@pytest.mark.parametrize("payload", [
    {}, {"kind": "run", "tenant_id": "acme"}, {"kind": "run", "tenant_id": 7, "mac": "x"},
    {"kind": "run", "tenant_id": "acme", "run_id": 5, "mac": "x"},
    {"kind": "run", "tenant_id": "acme", "run_id": "r" * 201, "mac": "x"},
])
def test_a_payload_that_is_not_a_claim_is_refused_as_malformed(payload: dict[str, object]) -> None:
    with pytest.raises(ClaimRefused, match="malformed"):
        SIGNER.verify(payload)


def test_an_id_may_not_pose_as_a_claim_field() -> None:
    with pytest.raises(ValueError, match="kind"):
        Claim.of("run", "acme", {"kind": "x"})


def test_without_a_key_nothing_is_signed_and_the_setting_is_named() -> None:
    for key in (None, SecretStr("")):
        with pytest.raises(ConfigurationError, match="TENANTRY_JOB_KEY"):
            ClaimSigner(key)
