"""Sentence embeddings from sentence-transformers model directories.

Reads ``modules.json`` (a Transformer module, then Pooling, optionally Normalize),
``sentence_bert_config.json`` (max_seq_length, do_lower_case) and
``1_Pooling/config.json``; tokenises with the ``tokenizers`` package from the checkpoint's
``tokenizer.json``. Sentences are never padded: each batch goes to the model as packed
tokens, and pooling runs over each sequence's own tokens.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from ._bert import BertModel
from ._checks import check_num_threads, shape_str

__all__ = ["SentenceEncoder"]

_logger = logging.getLogger("padfree")

# sentence-transformers concatenates the enabled modes in this order.
_POOLING_KEYS = (
    ("cls", "pooling_mode_cls_token"),
    ("max", "pooling_mode_max_tokens"),
    ("mean", "pooling_mode_mean_tokens"),
    ("mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens"),
    ("lasttoken", "pooling_mode_lasttoken"),
)
_POOLING_MODES = tuple(mode for mode, _ in _POOLING_KEYS)


def _read_json(path, default=None):
    if not os.path.isfile(path):
        if default is not None:
            return default
        raise FileNotFoundError(f"{path} is missing")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _pooling_modes(config: dict, where: str) -> tuple:
    unsupported = [key for key in ("pooling_mode_weightedmean_tokens",) if config.get(key)]
    if unsupported:
        raise ValueError(f"{where}: {unsupported[0]} is not supported "
                         f"(supported: {', '.join(_POOLING_MODES)})")
    modes = tuple(mode for mode, key in _POOLING_KEYS if config.get(key))
    if not modes:
        raise ValueError(f"{where}: no pooling mode is enabled")
    return modes


def _pool_packed(hidden, cu_seqlens, modes) -> np.ndarray:
    """Pool packed hidden states (T, D) per sequence -> (B, D * len(modes)); a sequence with
    no tokens pools to zeros."""
    starts, ends = cu_seqlens[:-1], cu_seqlens[1:]
    lengths = (ends - starts).astype(np.float32)
    nonempty = lengths > 0
    B, D = lengths.size, hidden.shape[1]
    parts = []
    for mode in modes:
        out = np.zeros((B, D), np.float32)
        if nonempty.any():
            first, last = starts[nonempty], ends[nonempty] - 1
            if mode == "cls":
                out[nonempty] = hidden[first]
            elif mode == "lasttoken":
                out[nonempty] = hidden[last]
            elif mode == "max":
                # reduceat over nonempty segments only: an empty one would read its neighbour.
                out[nonempty] = np.maximum.reduceat(hidden, first, axis=0)
            else:
                sums = np.add.reduceat(hidden, first, axis=0)
                counts = lengths[nonempty][:, None]
                out[nonempty] = sums / (np.sqrt(counts) if mode == "mean_sqrt_len" else counts)
        parts.append(out)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _normalize_rows(x):
    # sentence-transformers divides by max(norm, 1e-12); zero rows stay zero.
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class SentenceEncoder:
    """A BERT-family model plus pooling (and optional normalisation) -> sentence vectors.

    >>> encoder = padfree.SentenceEncoder.from_pretrained(path)         # doctest: +SKIP
    >>> vectors = encoder.encode(["A cat sat.", "Dogs bark."])          # doctest: +SKIP
    >>> vectors.shape                                                   # doctest: +SKIP
    (2, 384)
    """

    def __init__(self, model: BertModel, *, pooling=("mean",), normalize=False, tokenizer=None,
                 max_seq_length=None, do_lower_case=False):
        if isinstance(pooling, str):
            pooling = (pooling,)
        for mode in pooling:
            if mode not in _POOLING_MODES:
                raise ValueError(f"pooling must be among {_POOLING_MODES}, got {mode!r}")
        self.model = model
        self.pooling = tuple(pooling)
        self.normalize = bool(normalize)
        self.tokenizer = tokenizer
        limit = model.config.max_length
        self.max_seq_length = min(int(max_seq_length), limit) if max_seq_length else limit
        self.do_lower_case = bool(do_lower_case)
        if tokenizer is not None:
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            tokenizer.no_padding()

    @classmethod
    def from_pretrained(cls, path, *, num_threads=None) -> "SentenceEncoder":
        """Load a sentence-transformers directory (or a bare model directory: mean pooling).

        The tokenizer needs the optional ``tokenizers`` package; without it the encoder
        still accepts pre-tokenised ``input_ids``.

        Args:
            path: a sentence-transformers directory (``modules.json``, ``1_Pooling/``, the
                transformer's ``config.json``, ``model.safetensors`` and ``tokenizer.json``)
                or a bare Hugging Face model directory, as str or PathLike.
            num_threads: default OpenMP threads of calls; None uses OpenMP's default.
        """
        path = os.fspath(path)
        modules = _read_json(os.path.join(path, "modules.json"), default=[])
        transformer_dir, pooling, normalize = path, ("mean",), False
        seen_pooling = False
        for module in sorted(modules, key=lambda m: m.get("idx", 0)):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            module_dir = os.path.join(path, module.get("path", ""))
            if kind == "Transformer":
                transformer_dir = module_dir
            elif kind == "Pooling":
                config_path = os.path.join(module_dir, "config.json")
                pooling = _pooling_modes(_read_json(config_path), config_path)
                seen_pooling = True
            elif kind == "Normalize":
                normalize = True
            else:
                raise ValueError(f"{path}/modules.json: module type {module.get('type')!r} is "
                                 f"not supported (Transformer, Pooling, Normalize)")
        if modules and not seen_pooling:
            raise ValueError(f"{path}/modules.json lists no Pooling module")
        st_config = _read_json(os.path.join(transformer_dir, "sentence_bert_config.json"), {})
        model = BertModel.from_pretrained(transformer_dir, num_threads=num_threads)
        tokenizer = _load_tokenizer(transformer_dir)
        return cls(model, pooling=pooling, normalize=normalize, tokenizer=tokenizer,
                   max_seq_length=st_config.get("max_seq_length"),
                   do_lower_case=st_config.get("do_lower_case", False))

    @property
    def dimension(self) -> int:
        return self.model.hidden_size * len(self.pooling)

    def tokenize(self, sentences) -> list:
        """Token ids per sentence (list of int64 arrays), truncated to max_seq_length."""
        if isinstance(sentences, (bytes, bytearray)):
            raise TypeError("sentences must be a str or a sequence of str, got bytes; decode it")
        sentences = list(sentences)
        for index, sentence in enumerate(sentences):
            if not isinstance(sentence, str):  # str() of bytes or None would embed garbage
                raise TypeError(f"sentences[{index}] must be a str, got "
                                f"{type(sentence).__name__}")
        if self.tokenizer is None:
            raise ImportError(
                "tokenising text needs the 'tokenizers' package and the model's tokenizer.json "
                "(pip install 'padfree[text]'); or pass input_ids= to encode()"
            )
        # sentence-transformers strips each text (and lower-cases it if configured).
        texts = [s.strip() for s in sentences]
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        return [np.asarray(e.ids, np.int64) for e in self.tokenizer.encode_batch(texts)]

    def encode(self, sentences=None, batch_size=32, normalize=None, show_progress=False, *,
               input_ids=None, attention_mask=None, num_threads=None) -> np.ndarray:
        """Embed sentences -> (N, D) float32 in input order ((D,) for a single string).

        Args:
            sentences: a string or a sequence of strings (needs ``tokenizers``).
            batch_size: sentences per forward pass; sentences are sorted by token count
                first, and never padded.
            normalize: L2-normalise; None follows the checkpoint (its Normalize module).
            show_progress: a tqdm progress bar over batches (if tqdm is installed).
            input_ids: instead of sentences, pre-tokenised ids: a (N, L) array with
                ``attention_mask`` (1 = token), or a list of N id sequences.
            num_threads: OpenMP threads (None: the model's, then OpenMP's default).
        """
        check_num_threads(num_threads)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        single = isinstance(sentences, str)
        if (sentences is None) == (input_ids is None):
            raise TypeError("give exactly one of sentences and input_ids")
        if sentences is not None:
            if attention_mask is not None:
                raise TypeError("attention_mask goes with input_ids, not with sentences")
            token_lists = self.tokenize([sentences] if single else sentences)
        else:
            token_lists = self._split_pretokenized(input_ids, attention_mask)

        embeddings = np.zeros((len(token_lists), self.dimension), np.float32)
        order = np.argsort([-len(t) for t in token_lists], kind="stable")
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        for batch in _progress(batches, show_progress):
            ids = [token_lists[i] for i in batch]
            cu = np.zeros(len(ids) + 1, np.int64)
            np.cumsum([len(t) for t in ids], out=cu[1:])
            packed = np.concatenate(ids) if ids else np.zeros(0, np.int64)
            hidden = self.model.forward_packed(packed, cu, num_threads=num_threads)
            embeddings[batch] = _pool_packed(hidden, cu, self.pooling)
        if self.normalize if normalize is None else normalize:
            embeddings = _normalize_rows(embeddings)
        return embeddings[0] if single else embeddings

    def _split_pretokenized(self, input_ids, attention_mask) -> list:
        if isinstance(input_ids, np.ndarray) or attention_mask is not None:
            ids = np.asarray(input_ids)
            if ids.ndim != 2 or ids.dtype.kind not in "iu":
                raise ValueError(f"input_ids must be a (N, L) integer array or a list of id "
                                 f"sequences, got {shape_str(ids.shape)} {ids.dtype}")
            if attention_mask is None:
                return [row.astype(np.int64) for row in ids]
            mask = np.asarray(attention_mask)
            if mask.shape != ids.shape:
                raise ValueError(f"attention_mask has shape {shape_str(mask.shape)} but "
                                 f"input_ids has {shape_str(ids.shape)}")
            keep = self.model._check_mask(mask, ids.shape)
            return [row[k].astype(np.int64) for row, k in zip(ids, keep)]
        lists = []
        for index, row in enumerate(input_ids):
            row = np.asarray(row)
            if row.ndim != 1 or (row.size and row.dtype.kind not in "iu"):
                raise ValueError(f"input_ids[{index}] must be a 1-D sequence of ints")
            lists.append(row.astype(np.int64))
        return lists


def _load_tokenizer(directory):
    path = os.path.join(directory, "tokenizer.json")
    if not os.path.isfile(path):
        _logger.debug("%s has no tokenizer.json; only input_ids will be accepted", directory)
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        _logger.debug("the tokenizers package is missing; only input_ids will be accepted")
        return None
    return Tokenizer.from_file(path)


def _progress(items, show):
    if not show:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        _logger.info("show_progress needs tqdm (pip install tqdm); continuing without a bar")
        return items
    return tqdm(items, desc="padfree encode", unit="batch")
