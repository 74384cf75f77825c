"""Text embedders: WordLlama by default, a feature-hashing embedder for fast tests.

``WordLlamaEmbedder`` uses the ``l2_supercat`` model whose 256-dimension weights and
tokenizer ship inside the ``wordllama`` wheel, loaded with downloads disabled, so it
never touches the network (the library would otherwise fetch missing files from Hugging
Face). It is a static, context-free model: a text's embedding is the average of its
token embeddings, fast on a CPU and good enough to rank a tenant's own documents, not a
substitute for a transformer encoder.

Provenance, for the licence record: the wheel is MIT (Copyright (c) 2024 Lee Miller).
The codebook (a 32,000 x 256 float16 table) was trained from the token-embedding
codebooks of Llama-2-vocabulary models, Llama 2 70B among them, and the tokenizer file
is the Llama 2 vocabulary. The model card declares MIT, and the wheel carries no Llama 2
Community License text or notice; whether Meta's terms reach this derivative is an
open legal question, not settled here.

Every embedder returns float32 rows of unit length (a text without tokens embeds as
the zero vector, which the stores refuse).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from core.errors import ConfigurationError, InvalidInput

WORDLLAMA_CONFIG: Final = "l2_supercat"
WORDLLAMA_FILE_DIM: Final = 256
WORDLLAMA_DIMS: Final = (64, 128, 256)
_WORD = re.compile(r"\w+", re.UNICODE)


class Embedder(Protocol):
    """Turns texts into vectors of one fixed dimension."""

    @property
    def dim(self) -> int:
        """The length of every vector this embedder returns."""

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit-length float32 row per text, in order."""


def normalise_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Scale each row to unit length; all-zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out = np.zeros_like(matrix, dtype=np.float32)
    np.divide(matrix, norms, out=out, where=norms > 0)
    return out


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("embed() takes a sequence of strings")
    return list(texts)


def wordllama_files() -> tuple[Path, Path]:
    """The weights and tokenizer files inside the installed ``wordllama`` package.

    Raises:
        ConfigurationError: The wheel lacks the files (the library would then try to
            download them, which Tenantry never lets it do).
    """
    import wordllama

    package = Path(wordllama.__file__).resolve().parent
    weights = package / "weights" / f"{WORDLLAMA_CONFIG}_{WORDLLAMA_FILE_DIM}.safetensors"
    tokenizer = package / "tokenizers" / f"{WORDLLAMA_CONFIG}_tokenizer_config.json"
    for path in (weights, tokenizer):
        if not path.is_file():
            raise ConfigurationError(f"wordllama model file missing from the wheel: {path}")
    return weights, tokenizer


def _load_wordllama(dim: int) -> Any:
    weights, _ = wordllama_files()
    from wordllama import WordLlama

    return WordLlama.load(
        config=WORDLLAMA_CONFIG,
        cache_dir=weights.parent.parent,
        dim=WORDLLAMA_FILE_DIM,
        trunc_dim=None if dim == WORDLLAMA_FILE_DIM else dim,
        disable_download=True,
    )


class WordLlamaEmbedder:
    """The default embedder: WordLlama ``l2_supercat``, offline, computed in a thread.

    Build it with ``await WordLlamaEmbedder.load()`` in the app's startup, so the
    model file is read once and off the event loop.
    """

    def __init__(self, model: Any, dim: int) -> None:
        self._model = model
        self.dim = dim
        self._lock = threading.Lock()

    @classmethod
    async def load(cls, dim: int = WORDLLAMA_FILE_DIM) -> WordLlamaEmbedder:
        """Load the model shipped in the wheel.

        Args:
            dim: 256, or a Matryoshka truncation of it (64 or 128): smaller vectors,
                slightly worse ranking.
        """
        if dim not in WORDLLAMA_DIMS:
            raise ConfigurationError(f"wordllama dim must be one of {WORDLLAMA_DIMS}, got {dim}")
        return cls(await asyncio.to_thread(_load_wordllama, dim), dim)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in a worker thread: tokenising and pooling block."""
        batch = _check_texts(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return await asyncio.to_thread(self._embed_blocking, batch)

    def _embed_blocking(self, texts: list[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            raw = self._model.embed(texts, norm=False, return_np=True)
        return normalise_rows(np.asarray(raw, dtype=np.float32))


@dataclass(frozen=True, slots=True)
class HashingEmbedder:
    """A deterministic bag-of-words embedder for tests: words hashed into ``dim`` buckets.

    Texts sharing words are close, texts sharing none are orthogonal (up to bucket
    collisions). It knows no synonyms, so it exercises stores, not retrieval quality.
    """

    dim: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 2:
            raise ConfigurationError(f"HashingEmbedder dim must be an integer >= 2, got {self.dim}")

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed inline: hashing a few words is cheaper than a thread hop."""
        batch = _check_texts(texts)
        matrix = np.zeros((len(batch), self.dim), dtype=np.float32)
        for row, text in enumerate(batch):
            for word in _WORD.findall(text.lower()):
                digest = int.from_bytes(
                    hashlib.blake2b(word.encode(), digest_size=8).digest(), "big"
                )
                matrix[row, digest % self.dim] += 1.0 if digest >> 63 else -1.0
        return normalise_rows(matrix)
