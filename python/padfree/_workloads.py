"""Benchmark workloads shared by ``python -m padfree bench`` and benchmarks/bench_peers.py.

The seeds are fixed so that the batches have the token counts quoted in the design notes:
the skewed sentence batch holds 942 valid tokens padded to 32 x 72 = 2304, the BERT-base
batch 1598 valid tokens padded to 8 x 334 = 2672.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bert_base_lengths", "padded_forward", "skewed_lengths", "token_batch"]

SKEWED_SEED = 394
BERT_BASE_SEED = 9793


def skewed_lengths(batch=32, low=5, high=128, seed=SKEWED_SEED) -> np.ndarray:
    """Sentence lengths as a real corpus has them: many short, a long tail.

    low + floor((high - low + 1) * Beta(1.2, 5)): the median is near low + 20 % of the range
    and a batch of 32 usually reaches ~60 % of high.
    """
    rng = np.random.default_rng(seed)
    return low + np.floor((high - low + 1) * rng.beta(1.2, 5.0, size=batch)).astype(np.int64)


def bert_base_lengths(batch=8, low=32, high=384, seed=BERT_BASE_SEED) -> np.ndarray:
    """Uniform lengths in [low, high] for the BERT-base workload."""
    return np.random.default_rng(seed).integers(low, high + 1, size=batch)


def token_batch(lengths, vocab_size, seed=0):
    """Random token ids (B, max(lengths)) int64 right-padded with 0, and the 0/1 mask.

    Ids avoid the first tenth of the vocabulary, where BERT-family vocabularies keep their
    special and unused tokens; timing does not depend on which ids they are.
    """
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    width = int(lengths.max())
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(vocab_size // 10, vocab_size, size=mask.shape) * mask
    return ids, mask


def padded_forward(model, input_ids, attention_mask, *, num_threads=None) -> np.ndarray:
    """The conventional padded computation on padfree's kernels, for comparison: every one of
    the B x L positions goes through the embeddings, GEMMs and attention (an L x L score
    block per sequence and head, padded keys masked out). Returns (B, L, D) with the padded
    positions zeroed, as the packed path returns them."""
    ids = np.asarray(input_ids, np.int64)
    keep = np.asarray(attention_mask).astype(bool)
    B, L = ids.shape
    if model.config.family == "roberta":
        real = ids != model.config.pad_token_id
        positions = np.cumsum(real, axis=1) * real + model.config.pad_token_id
    else:
        positions = np.broadcast_to(np.arange(L), (B, L))
    hidden = model.embed_packed(ids.reshape(-1), positions.reshape(-1), num_threads=num_threads)
    src_mask = np.ascontiguousarray(np.broadcast_to(keep[:, None, :], (B, L, L)))
    out = model.encoder(hidden.reshape(B, L, -1), src_mask=src_mask, num_threads=num_threads)
    return out * keep[..., None]
