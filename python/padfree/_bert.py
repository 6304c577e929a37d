"""BERT-family encoders (BERT, RoBERTa, XLM-RoBERTa, DistilBERT) from Hugging Face checkpoints.

A model directory holds ``config.json`` and safetensors weights. The weights are read with
padfree's own safetensors reader (NumPy only), mapped onto ``padfree.Encoder``'s state-dict
names, and packed once. A forward pass packs the valid tokens of the batch first: the
embedding lookups, the embedding LayerNorm and every encoder layer run on valid tokens only.
"""

from __future__ import annotations

import json
import logging
import operator
import os
from dataclasses import dataclass

import numpy as np

from ._checks import check_num_threads, shape_str
from .safetensors import open_checkpoint

__all__ = ["BertConfig", "BertModel", "BertOutput"]

_logger = logging.getLogger("padfree")

# Hugging Face activation names -> padfree.Encoder activations. gelu_new, gelu_fast and
# gelu_pytorch_tanh are all the tanh approximation (same formula, different spellings).
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}
_BERT_TYPES = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta",
               "camembert": "roberta", "distilbert": "distilbert"}


@dataclass(frozen=True)
class BertConfig:
    """What padfree needs from a Hugging Face ``config.json``."""

    family: str  # "bert", "roberta" or "distilbert"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    activation: str  # padfree.Encoder's name
    max_position_embeddings: int
    type_vocab_size: int  # 0 when the model has no token-type embeddings
    layer_norm_eps: float
    pad_token_id: int

    @classmethod
    def from_dict(cls, config: dict, where: str = "config") -> "BertConfig":
        model_type = config.get("model_type")
        if not isinstance(model_type, str) or model_type not in _BERT_TYPES:
            raise ValueError(
                f"{where}: model_type {model_type!r} is not supported "
                f"(supported: {', '.join(sorted(_BERT_TYPES))})"
            )
        family = _BERT_TYPES[model_type]
        if family == "distilbert":
            names = {"hidden_size": "dim", "num_layers": "n_layers", "num_heads": "n_heads",
                     "intermediate_size": "hidden_dim", "activation": "activation"}
        else:
            names = {"hidden_size": "hidden_size", "num_layers": "num_hidden_layers",
                     "num_heads": "num_attention_heads",
                     "intermediate_size": "intermediate_size", "activation": "hidden_act"}

        def need(key, default=None):
            value = config.get(key, default)
            if value is None:
                raise ValueError(f"{where}: {key!r} is missing")
            return value

        def need_int(key, default=None, minimum=1):
            # JSON ints only: "32", 32.5 or true are config errors, not sizes to round.
            value = need(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{where}: {key!r} must be an int >= {minimum}, got {value!r}")
            return value

        position_type = config.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(
                f"{where}: position_embedding_type {position_type!r} is not supported "
                f"(only 'absolute')"
            )
        for flag in ("is_decoder", "add_cross_attention"):
            if config.get(flag):
                raise ValueError(f"{where}: {flag}=True is not supported (encoders only)")
        activation = need(names["activation"], "gelu")
        if not isinstance(activation, str) or activation not in _ACTIVATIONS:
            raise ValueError(
                f"{where}: activation {activation!r} is not supported "
                f"(supported: {', '.join(_ACTIVATIONS)})"
            )
        hidden, heads = need_int(names["hidden_size"]), need_int(names["num_heads"])
        if hidden % heads:
            raise ValueError(f"{where}: hidden size {hidden} is not divisible by {heads} heads")
        pad_token_id = config.get("pad_token_id", 0 if family != "roberta" else 1)
        return cls(
            family=family,
            vocab_size=need_int("vocab_size"),
            hidden_size=hidden,
            num_layers=need_int(names["num_layers"]),
            num_heads=heads,
            intermediate_size=need_int(names["intermediate_size"]),
            activation=_ACTIVATIONS[activation],
            max_position_embeddings=need_int("max_position_embeddings", 512),
            type_vocab_size=0 if family == "distilbert" else need_int("type_vocab_size", 2, 0),
            # DistilBERT hard-codes 1e-12; the others default to it too.
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            pad_token_id=int(pad_token_id if pad_token_id is not None else 0),
        )

    @property
    def position_offset(self) -> int:
        """RoBERTa counts positions from padding_idx + 1; BERT and DistilBERT from 0."""
        return self.pad_token_id + 1 if self.family == "roberta" else 0

    @property
    def max_length(self) -> int:
        """The longest sequence the position table can hold."""
        return self.max_position_embeddings - self.position_offset


class BertOutput(dict):
    """``last_hidden_state`` and, when the model has a pooler, ``pooler_output``.

    A dict whose keys are also attributes, like Hugging Face's model outputs.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Weights:
    """Reads named tensors from a checkpoint, checking presence, shape and finiteness."""

    def __init__(self, checkpoint, where):
        self.checkpoint, self.where = checkpoint, where
        # Old TensorFlow-converted checkpoints name LayerNorm parameters gamma/beta.
        self.aliases = {}
        for name in checkpoint:
            for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
                if "LayerNorm" in name and name.endswith(old):
                    self.aliases[name[: -len(old)] + new] = name
        self.used = set()

    def __contains__(self, name):
        return name in self.checkpoint or name in self.aliases

    def take(self, name, shape) -> np.ndarray:
        stored = name if name in self.checkpoint else self.aliases.get(name)
        if stored is None:
            raise ValueError(f"{self.where}: weight {name!r} is missing")
        value = self.checkpoint[stored]
        if value.dtype != np.float32:
            raise ValueError(f"{self.where}: weight {stored!r} has dtype {value.dtype}, "
                             f"expected a float type")
        if value.shape != tuple(shape):
            raise ValueError(f"{self.where}: weight {stored!r} has shape "
                             f"{shape_str(value.shape)}, expected {shape_str(shape)}")
        if not np.isfinite(value).all():
            raise ValueError(f"{self.where}: weight {stored!r} holds NaN or infinity")
        self.used.add(stored)
        return value


def _find_prefix(checkpoint, where) -> str:
    """The base-model prefix ('', 'bert.', 'roberta.', 'distilbert.', ...)."""
    suffix = "embeddings.word_embeddings.weight"
    candidates = sorted(name[: -len(suffix)] for name in checkpoint if name.endswith(suffix))
    if len(candidates) != 1 or (candidates[0] and not candidates[0].endswith(".")):
        raise ValueError(
            f"{where}: expected exactly one '*{suffix}' tensor to locate the base model, "
            f"found {candidates or 'none'}"
        )
    return candidates[0]


def _layer_names(family, prefix, index):
    """Checkpoint names for one layer, keyed by the padfree.Encoder name they map to."""
    if family == "distilbert":
        base = f"{prefix}transformer.layer.{index}."
        return {"q": base + "attention.q_lin", "k": base + "attention.k_lin",
                "v": base + "attention.v_lin", "out_proj": base + "attention.out_lin",
                "norm1": base + "sa_layer_norm", "linear1": base + "ffn.lin1",
                "linear2": base + "ffn.lin2", "norm2": base + "output_layer_norm"}
    base = f"{prefix}encoder.layer.{index}."
    return {"q": base + "attention.self.query", "k": base + "attention.self.key",
            "v": base + "attention.self.value", "out_proj": base + "attention.output.dense",
            "norm1": base + "attention.output.LayerNorm", "linear1": base + "intermediate.dense",
            "linear2": base + "output.dense", "norm2": base + "output.LayerNorm"}


def _encoder_state_dict(weights, config, prefix):
    D, F = config.hidden_size, config.intermediate_size
    state = {}
    for i in range(config.num_layers):
        names = _layer_names(config.family, prefix, i)
        qkv = [names[part] for part in ("q", "k", "v")]
        ours = f"layers.{i}."
        state[ours + "self_attn.in_proj_weight"] = np.concatenate(
            [weights.take(n + ".weight", (D, D)) for n in qkv])
        state[ours + "self_attn.in_proj_bias"] = np.concatenate(
            [weights.take(n + ".bias", (D,)) for n in qkv])
        shapes = {"out_proj": ((D, D), "self_attn.out_proj"), "linear1": ((F, D), "linear1"),
                  "linear2": ((D, F), "linear2"), "norm1": (None, "norm1"),
                  "norm2": (None, "norm2")}
        for part, (shape, target) in shapes.items():
            state[ours + target + ".weight"] = weights.take(names[part] + ".weight", shape or (D,))
            state[ours + target + ".bias"] = weights.take(names[part] + ".bias", shape[:1]
                                                          if shape else (D,))
    return state


def _as_int_array(value, name):
    array = np.asarray(value)
    if array.dtype == object or not (array.dtype.kind in "iu" or array.size == 0):
        raise TypeError(f"{name} must be an integer array, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class BertModel:
    """A BERT-family encoder running on padfree's kernels.

    >>> model = padfree.BertModel.from_pretrained("all-MiniLM-L6-v2")   # doctest: +SKIP
    >>> out = model(input_ids, attention_mask)                          # doctest: +SKIP
    >>> out.last_hidden_state.shape                                     # doctest: +SKIP
    (2, 12, 384)

    Supports BERT (keys with or without ``bert.``), RoBERTa / XLM-RoBERTa (positions counted
    from ``pad_token_id + 1``) and DistilBERT checkpoints with absolute position embeddings.
    Weights are immutable after loading; one model may be called from several threads.
    """

    def __init__(self, config: BertConfig, checkpoint, *, num_threads=None, where="weights"):
        import padfree

        self.config = config
        self.num_threads = num_threads
        check_num_threads(num_threads)
        if not hasattr(padfree, "Encoder") or not hasattr(padfree, "layer_norm"):
            raise ImportError("this padfree build lacks Encoder/layer_norm; rebuild padfree")
        weights = _Weights(checkpoint, where)
        prefix = _find_prefix(checkpoint, where)
        D = config.hidden_size

        embeddings = prefix + "embeddings."
        self.word_embeddings = weights.take(embeddings + "word_embeddings.weight",
                                            (config.vocab_size, D))
        self.position_embeddings = weights.take(embeddings + "position_embeddings.weight",
                                                (config.max_position_embeddings, D))
        self.token_type_embeddings = (
            weights.take(embeddings + "token_type_embeddings.weight", (config.type_vocab_size, D))
            if config.type_vocab_size else None
        )
        self.embedding_norm = (weights.take(embeddings + "LayerNorm.weight", (D,)),
                               weights.take(embeddings + "LayerNorm.bias", (D,)))
        self.encoder = padfree.Encoder.from_state_dict(
            _encoder_state_dict(weights, config, prefix),
            num_heads=config.num_heads,
            norm_first=False,
            activation=config.activation,
            layer_norm_eps=config.layer_norm_eps,
            num_threads=num_threads,
        )
        # The pooler runs on padfree's GEMM, not NumPy's: OpenBLAS worker threads keep
        # spinning for a while after a call and would starve the OpenMP threads of the next
        # forward pass (measured: +10 ms per parallel region on 2 cores).
        self.pooler = None
        if prefix + "pooler.dense.weight" in weights:
            self.pooler = padfree.Linear(weights.take(prefix + "pooler.dense.weight", (D, D)),
                                         weights.take(prefix + "pooler.dense.bias", (D,)))
        self._check_leftovers(weights, prefix, where)

    def _check_leftovers(self, weights, prefix, where):
        # Base-model tensors we did not read mean the config and the checkpoint disagree
        # (more layers than num_hidden_layers, relative-position tables, ...): refuse rather
        # than silently drop them. Task heads outside the base model are ignored.
        ignored = {prefix + "embeddings.position_ids", prefix + "embeddings.token_type_ids"}
        sections = ("embeddings.", "encoder.", "pooler.", "transformer.")
        unused = [name for name in weights.checkpoint
                  if name not in weights.used and name not in ignored
                  and name.startswith(tuple(prefix + s for s in sections))]
        if unused:
            shown = ", ".join(repr(n) for n in unused[:5])
            raise ValueError(f"{where}: {len(unused)} base-model weights do not fit the config "
                             f"and would be ignored: {shown}{' ...' if len(unused) > 5 else ''}")
        others = [n for n in weights.checkpoint if n not in weights.used and n not in ignored]
        if others:
            _logger.debug("ignoring %d weights outside the base model, e.g. %r",
                          len(others), others[0])

    @classmethod
    def from_pretrained(cls, path, *, num_threads=None) -> "BertModel":
        """Load ``config.json`` and safetensors weights (one file or shards) from a directory.

        Args:
            path: a Hugging Face model directory (``config.json`` plus ``model.safetensors``
                or ``model.safetensors.index.json`` with its shards), as str or PathLike.
            num_threads: default OpenMP threads of calls; None uses OpenMP's default.

        Raises:
            FileNotFoundError: no config.json or no safetensors weights in ``path``.
            ValueError: an unsupported architecture or option, or weights that are missing,
                mis-shaped, non-finite or do not fit the config (the message names them).
        """
        path = os.fspath(path)
        config_path = os.path.join(path, "config.json")
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{path} has no config.json (is it a model directory?)")
        with open(config_path, encoding="utf-8") as handle:
            config = BertConfig.from_dict(json.load(handle), where=config_path)
        return cls(config, open_checkpoint(path), num_threads=num_threads, where=path)

    @classmethod
    def from_state_dict(cls, state_dict, config, *, num_threads=None) -> "BertModel":
        """Build from a mapping of Hugging Face names to arrays and a config dict.

        Args:
            state_dict: mapping from Hugging Face weight names (``embeddings.*``,
                ``encoder.layer.{i}.*``, optional ``pooler.dense.*``; with or without the
                ``bert.``/``roberta.`` prefix, or DistilBERT's names) to floating-point
                arrays, converted to float32.
            config: the contents of ``config.json`` as a dict (or a ``BertConfig``).
            num_threads: default OpenMP threads of calls; None uses OpenMP's default.
        """
        if not isinstance(config, BertConfig):
            if not hasattr(config, "keys"):
                raise TypeError(f"config must be a mapping (config.json's contents) or a "
                                f"BertConfig, got {type(config).__name__}")
            config = BertConfig.from_dict(dict(config))
        arrays = {}
        for name, value in state_dict.items():
            value = np.asarray(value)
            arrays[name] = value.astype(np.float32) if value.dtype.kind == "f" else value
        return cls(config, arrays, num_threads=num_threads, where="state_dict")

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    def embed_packed(self, input_ids, positions, token_type_ids=None, *, num_threads=None):
        """Embeddings (word + token type + position, then LayerNorm) of packed tokens.

        Arguments are 1-D int64 arrays of equal length T; the result is (T, D) float32.
        Inputs are trusted here (checked by the callers).
        """
        import padfree

        hidden = self.word_embeddings[input_ids]
        if self.token_type_embeddings is not None:
            types = token_type_ids if token_type_ids is not None else 0
            hidden += self.token_type_embeddings[types]
        hidden += self.position_embeddings[positions]
        gamma, beta = self.embedding_norm
        return padfree.layer_norm(hidden, gamma, beta, eps=self.config.layer_norm_eps,
                                  num_threads=self._small_work_threads(hidden.size, num_threads))

    def _threads(self, num_threads):
        return num_threads if num_threads is not None else self.num_threads

    # Below ~1M floats of work (a few hundred microseconds on one core) a parallel region
    # costs more in thread wake-ups than it saves, most of all on a busy machine.
    _SMALL_WORK = 1 << 20

    def _small_work_threads(self, work, num_threads):
        return 1 if work < self._SMALL_WORK else self._threads(num_threads)

    def forward_packed(self, input_ids, cu_seqlens, *, position_ids=None, token_type_ids=None,
                       num_threads=None) -> np.ndarray:
        """Run packed tokens: ``input_ids`` (T,), ``cu_seqlens`` (B + 1,) -> hidden (T, D).

        Sequence b owns tokens ``cu_seqlens[b]:cu_seqlens[b + 1]``. ``position_ids``
        defaults to each token's index within its sequence (plus the RoBERTa offset).
        """
        check_num_threads(num_threads)
        ids = self._check_ids(_as_int_array(input_ids, "input_ids").reshape(-1), "input_ids")
        cu = _as_int_array(cu_seqlens, "cu_seqlens")
        if (cu.ndim != 1 or cu.size < 1 or cu[0] != 0 or cu[-1] != ids.size
                or (np.diff(cu) < 0).any()):
            raise ValueError(
                f"cu_seqlens must be non-decreasing offsets from 0 to len(input_ids)={ids.size}, "
                f"got {cu if cu.size < 10 else shape_str(cu.shape)}"
            )
        lengths = np.diff(cu)
        if position_ids is None:
            if lengths.size and lengths.max() > self.config.max_length:
                self._too_long(lengths.max(), "input_ids")
            positions = np.arange(ids.size) - np.repeat(cu[:-1], lengths)
            positions += self.config.position_offset
        else:
            positions = _as_int_array(position_ids, "position_ids").reshape(-1)
            if positions.shape != ids.shape:
                raise ValueError(f"position_ids has {positions.size} entries but input_ids has "
                                 f"{ids.size}")
            if positions.size and (positions.min() < 0
                                   or positions.max() >= self.config.max_position_embeddings):
                raise ValueError(f"position_ids must lie in [0, "
                                 f"{self.config.max_position_embeddings}), got "
                                 f"{positions.min()}..{positions.max()}")
        types = None
        if token_type_ids is not None:
            types = _as_int_array(token_type_ids, "token_type_ids").reshape(-1)
            if types.shape != ids.shape:
                raise ValueError(f"token_type_ids has {types.size} entries but input_ids has "
                                 f"{ids.size}")
            self._check_types(types)
        return self._run_packed(ids, cu, positions, types, num_threads)

    def _run_packed(self, ids, cu, positions, types, num_threads):
        threads = self._threads(num_threads)
        hidden = self.embed_packed(ids, positions, types, num_threads=threads)
        if ids.size == 0:
            return hidden
        return self.encoder.forward_packed(hidden, cu, num_threads=threads)

    def pool(self, hidden, cu_seqlens, *, num_threads=None) -> np.ndarray | None:
        """The pooler output (B, D): tanh(dense(first token)); zeros for empty sequences."""
        if self.pooler is None:
            return None
        cu = np.asarray(cu_seqlens)
        nonempty = cu[1:] > cu[:-1]
        out = np.zeros((cu.size - 1, self.hidden_size), np.float32)
        if nonempty.any():
            first = hidden[cu[:-1][nonempty]]
            threads = self._small_work_threads(first.shape[0] * self.hidden_size ** 2 // 64,
                                               num_threads)
            out[nonempty] = np.tanh(self.pooler(first, num_threads=threads))
        return out

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, *,
                 num_threads=None) -> BertOutput:
        """Run a padded batch.

        Args:
            input_ids: (B, L) integer token ids.
            attention_mask: (B, L), 1/True where a token takes part (Hugging Face's
                convention); None means every position. Holes and left padding are fine.
            token_type_ids: (B, L) segment ids, default 0.
            num_threads: OpenMP threads for this call (None: the model's, then OpenMP's).

        Returns:
            BertOutput with ``last_hidden_state`` (B, L, D) float32, exactly zero at masked
            positions, and ``pooler_output`` (B, D) when the checkpoint has a pooler (taken
            at each sequence's first valid token; zeros for a sequence with none).
        """
        check_num_threads(num_threads)
        ids = _as_int_array(input_ids, "input_ids")
        if ids.ndim != 2:
            raise ValueError(
                f"input_ids must have shape (batch, length), got {shape_str(ids.shape)}")
        keep = self._check_mask(attention_mask, ids.shape)
        rows, cols = np.nonzero(keep)  # row-major: packed by sequence, in position order
        packed_ids = self._check_ids(ids[rows, cols], "input_ids")
        lengths = keep.sum(axis=1)
        cu = np.zeros(ids.shape[0] + 1, np.int64)
        np.cumsum(lengths, out=cu[1:])

        if self.config.family == "roberta":
            # Hugging Face numbers RoBERTa positions by counting non-padding ids.
            real = ids != self.config.pad_token_id
            positions = (np.cumsum(real, axis=1) * real + self.config.pad_token_id)[rows, cols]
        else:
            positions = cols.astype(np.int64)
        if positions.size and positions.max() >= self.config.max_position_embeddings:
            self._too_long(positions.max() - self.config.position_offset + 1, "input_ids")

        types = None
        if token_type_ids is not None:
            type_array = _as_int_array(token_type_ids, "token_type_ids")
            if type_array.shape != ids.shape:
                raise ValueError(f"token_type_ids has shape {shape_str(type_array.shape)} but "
                                 f"input_ids has {shape_str(ids.shape)}")
            types = self._check_types(type_array[rows, cols])

        hidden = self._run_packed(packed_ids, cu, positions, types, num_threads)
        out = np.zeros(ids.shape + (self.hidden_size,), np.float32)
        out[rows, cols] = hidden
        result = BertOutput(last_hidden_state=out)
        if self.pooler is not None:
            result["pooler_output"] = self.pool(hidden, cu, num_threads=num_threads)
        return result

    def _check_mask(self, attention_mask, shape):
        if attention_mask is None:
            return np.ones(shape, bool)
        mask = np.asarray(attention_mask)
        if mask.shape != shape:
            raise ValueError(f"attention_mask has shape {shape_str(mask.shape)} but input_ids "
                             f"has {shape_str(shape)}")
        if mask.dtype == bool:
            return mask
        if mask.dtype.kind not in "iuf":
            raise TypeError(f"attention_mask must be bool or 0/1 numbers, got dtype {mask.dtype}")
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("attention_mask must hold only 0 and 1 (1 = token takes part), got "
                             f"values {np.unique(mask)[:5]}")
        return mask != 0

    def _check_ids(self, ids, name):
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab_size):
            bad = ids[(ids < 0) | (ids >= self.config.vocab_size)][0]
            raise ValueError(f"{name} holds token id {bad}, outside the vocabulary "
                             f"[0, {self.config.vocab_size})")
        return ids

    def _check_types(self, types):
        limit = self.config.type_vocab_size
        if types.size and (types.min() < 0 or types.max() >= max(limit, 1)):
            if limit == 0:
                raise ValueError(f"token_type_ids must be 0: {self.config.family} models have "
                                 f"no token-type embeddings")
            raise ValueError(f"token_type_ids must lie in [0, {limit}), got "
                             f"{types.min()}..{types.max()}")
        return types if limit else None

    def _too_long(self, length, name):
        raise ValueError(f"{name} holds a sequence of {operator.index(length)} tokens but the "
                         f"model "
                         f"accepts at most {self.config.max_length} (max_position_embeddings="
                         f"{self.config.max_position_embeddings}); truncate it")

    def __repr__(self):
        c = self.config
        return (f"BertModel({c.family}, layers={c.num_layers}, hidden={c.hidden_size}, "
                f"heads={c.num_heads}, ffn={c.intermediate_size}, act={c.activation})")
