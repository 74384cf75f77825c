from __future__ import annotations

import socket

import anthropic
import pytest

from tests.conftest import RealNetworkAttempt


def test_a_connection_beyond_loopback_fails_the_test() -> None:
    with socket.socket() as sock, pytest.raises(RealNetworkAttempt):
        sock.connect(("203.0.113.7", 443))


async def test_the_real_anthropic_endpoint_is_unreachable_from_tests() -> None:
    client = anthropic.AsyncAnthropic(api_key="sk-test", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError) as caught:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                     messages=[{"role": "user", "content": "hi"}])
    await client.close()
    chain: BaseException | None = caught.value
    while chain is not None and not isinstance(chain, RealNetworkAttempt):
        chain = chain.__cause__ or chain.__context__
    assert isinstance(chain, RealNetworkAttempt) or "real network" in repr(caught.value)
