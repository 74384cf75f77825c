"""Tests for core.vectors.embeddings: the real WordLlama model (offline) and the hashing one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wordllama

from core.errors import ConfigurationError, InvalidInput
from core.vectors.embeddings import HashingEmbedder, WordLlamaEmbedder, wordllama_files

CLOSE_AND_FAR = [
    ("How do I reset my password?", "Steps to change your login credentials",
     "The quarterly sales grew by ten percent"),
    ("How many vacation days do employees get?", "Annual leave allowance for staff is 25 days",
     "The server crashed because the disk was full"),
    ("Where is the invoice for March?", "Find the bill we were sent in March",
     "Our team offsite is in Lisbon"),
]


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any HTTP call wordllama could make, on top of the suite's socket guard."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"wordllama tried to download: {args!r}")

    monkeypatch.setattr("requests.get", refuse)
    monkeypatch.setattr("requests.Session.request", refuse)


def test_the_model_files_are_the_ones_inside_the_wheel() -> None:
    weights, tokenizer = wordllama_files()
    package = Path(wordllama.__file__).resolve().parent
    assert weights.parent.parent == package == tokenizer.parent.parent
    assert weights.name == "l2_supercat_256.safetensors"


async def test_wordllama_loads_from_the_wheel_without_the_network(no_downloads: None) -> None:
    embedder = await WordLlamaEmbedder.load()
    vectors = await embedder.embed(["offline embeddings", "still offline"])
    assert vectors.shape == (2, 256) and embedder.dim == 256
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("query", "close", "far"), CLOSE_AND_FAR)
async def test_wordllama_ranks_a_paraphrase_above_an_unrelated_sentence(
    no_downloads: None, query: str, close: str, far: str
) -> None:
    embedder = await WordLlamaEmbedder.load()
    q, near, other = await embedder.embed([query, close, far])
    assert float(q @ near) > float(q @ other) + 0.2


async def test_wordllama_truncates_to_a_smaller_matryoshka_dimension(no_downloads: None) -> None:
    embedder = await WordLlamaEmbedder.load(dim=64)
    vectors = await embedder.embed(["small vectors"])
    assert vectors.shape == (1, 64)
    with pytest.raises(ConfigurationError, match="dim"):
        await WordLlamaEmbedder.load(dim=300)


async def test_wordllama_embeds_text_without_tokens_as_zero_and_nothing_as_nothing(
    no_downloads: None,
) -> None:
    embedder = await WordLlamaEmbedder.load()
    assert not np.any((await embedder.embed([""]))[0])
    assert (await embedder.embed([])).shape == (0, 256)


def test_missing_model_files_are_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(wordllama, "__file__", str(tmp_path / "wordllama" / "__init__.py"))
    with pytest.raises(ConfigurationError, match="missing from the wheel"):
        wordllama_files()


async def test_hashing_is_deterministic_and_rewards_shared_words() -> None:
    embedder = HashingEmbedder(dim=256)
    first = await embedder.embed(["red apple pie", "red apple", "blue whale"])
    again = await HashingEmbedder(dim=256).embed(["red apple pie", "red apple", "blue whale"])
    assert np.array_equal(first, again)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert float(first[0] @ first[1]) > 0.7 > float(first[0] @ first[2])


async def test_hashing_handles_empty_input_and_refuses_a_bare_string() -> None:
    embedder = HashingEmbedder(dim=8)
    assert (await embedder.embed([])).shape == (0, 8)
    assert not np.any((await embedder.embed(["   "]))[0])
    with pytest.raises(InvalidInput):
        await embedder.embed("a string, not a list")
    with pytest.raises(ConfigurationError):
        HashingEmbedder(dim=1)
