"""A reader for safetensors checkpoints that needs only NumPy.

File layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional
``"__metadata__"`` of strings), then the tensor bytes. Offsets count from the end of the
header. Everything about the header is checked before any tensor is read: its size, that it
is a JSON object of well-formed entries, that every tensor's byte count matches its dtype
and shape, and that the tensors tile the data region exactly (contiguous, in range, no gaps
or overlaps). The data is memory-mapped; float32 tensors come back as read-only views of
the map, float16 and bfloat16 are converted to float32.

``save_file`` writes the format (float32, float16, float64, integer and bool arrays).

A sharded checkpoint (``model.safetensors.index.json`` with a ``weight_map`` from tensor
name to shard file) opens as one mapping over its shards.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import numpy as np

__all__ = [
    "SafetensorsError",
    "SafetensorsFile",
    "ShardedCheckpoint",
    "load_file",
    "open_checkpoint",
    "save_file",
]

# The reference implementation refuses headers above 100 MB; a real header is a few KB per
# hundred tensors, so anything larger is corrupt or hostile.
MAX_HEADER_BYTES = 100_000_000

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to float32 on read
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


class SafetensorsError(ValueError):
    """A safetensors file or index that is malformed, truncated or inconsistent."""


def _bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    # bfloat16 is the top half of a float32: shift the 16 bits into place.
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _parse_entry(name, entry, where):
    if not isinstance(entry, dict):
        raise SafetensorsError(f"{where}: entry {name!r} must be an object, got {entry!r}")
    unknown = set(entry) - {"dtype", "shape", "data_offsets"}
    missing = {"dtype", "shape", "data_offsets"} - set(entry)
    if missing or unknown:
        raise SafetensorsError(
            f"{where}: entry {name!r} must have keys dtype, shape, data_offsets; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise SafetensorsError(
            f"{where}: tensor {name!r} has unsupported dtype {dtype!r} "
            f"(supported: {', '.join(_DTYPES)})"
        )
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise SafetensorsError(
            f"{where}: tensor {name!r} shape must be a list of non-negative ints, got {shape!r}"
        )
    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise SafetensorsError(
            f"{where}: tensor {name!r} data_offsets must be [begin, end] with "
            f"0 <= begin <= end, got {offsets!r}"
        )
    expected = math.prod(shape) * _DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != expected:
        raise SafetensorsError(
            f"{where}: tensor {name!r} of dtype {dtype} and shape {tuple(shape)} needs "
            f"{expected} bytes but data_offsets {offsets} span {offsets[1] - offsets[0]}"
        )
    return dtype, tuple(shape), (offsets[0], offsets[1])


def _parse_header(raw: bytes, data_size: int, where: str):
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{where}: header is not valid UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(
            f"{where}: header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise SafetensorsError(f"{where}: __metadata__ must map strings to strings")
    entries = {name: _parse_entry(name, entry, where) for name, entry in header.items()}

    # The tensors must tile [0, data_size) exactly: sorted by offset, each starts where the
    # previous ended. This rules out overlaps (aliasing) and unaccounted bytes.
    position = 0
    for name, (_, _, (begin, end)) in sorted(entries.items(), key=lambda item: item[1][2]):
        if begin != position:
            raise SafetensorsError(
                f"{where}: tensor {name!r} starts at byte {begin} but the previous tensor "
                f"ends at {position} (tensors must be contiguous and must not overlap)"
            )
        position = end
    if position != data_size:
        raise SafetensorsError(
            f"{where}: tensors cover {position} bytes but the file holds {data_size} data "
            f"bytes after the header"
        )
    return entries, metadata


class SafetensorsFile(Mapping):
    """One ``.safetensors`` file as a read-only mapping from tensor name to NumPy array.

    Float tensors (F64, F32, F16, BF16) come back as float32; integer and bool tensors keep
    their dtype. The header is validated in full when the file is opened.

    >>> weights = SafetensorsFile("model.safetensors")         # doctest: +SKIP
    >>> weights["embeddings.word_embeddings.weight"].shape      # doctest: +SKIP
    (30522, 384)
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        where = self.path
        file_size = os.path.getsize(self.path)
        if file_size < 8:
            raise SafetensorsError(f"{where}: file has {file_size} bytes, too short for a header")
        with open(self.path, "rb") as handle:
            header_size = int.from_bytes(handle.read(8), "little")
            if header_size > MAX_HEADER_BYTES:
                raise SafetensorsError(
                    f"{where}: header length {header_size} exceeds the limit of "
                    f"{MAX_HEADER_BYTES} bytes"
                )
            if 8 + header_size > file_size:
                raise SafetensorsError(
                    f"{where}: header length {header_size} runs past the end of the file "
                    f"({file_size} bytes)"
                )
            raw = handle.read(header_size)
        self._data_start = 8 + header_size
        data_size = file_size - self._data_start
        self._entries, self.metadata = _parse_header(raw, data_size, where)
        # An empty data region cannot be memory-mapped; such a file only holds empty tensors.
        self._map = np.empty(0, np.uint8)
        if data_size > 0:
            # A plain ndarray view of the map: slices of np.memmap carry per-index overhead.
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r").view(np.ndarray)

    def __getitem__(self, name) -> np.ndarray:
        try:
            dtype, shape, (begin, end) = self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None
        raw = self._map[self._data_start + begin : self._data_start + end]
        array = raw.view(_DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":
            return _bf16_to_f32(array)
        if dtype in _FLOAT_DTYPES:
            array = array.astype(np.float32, copy=False)
        elif not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        if dtype == "F32" and array.ctypes.data % 4 != 0:
            array = array.copy()  # unaligned in the file: copy once so kernels read aligned
        return array

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def dtype(self, name) -> str:
        """The tensor's dtype as stored in the file (``"F32"``, ``"BF16"``, ...)."""
        return self._entries[name][0]

    def shape(self, name) -> tuple:
        return self._entries[name][1]


class ShardedCheckpoint(Mapping):
    """Shards listed by a ``model.safetensors.index.json``, as one mapping."""

    def __init__(self, index_path):
        self.path = os.fspath(index_path)
        where = self.path
        try:
            with open(self.path, encoding="utf-8") as handle:
                index = json.load(handle)
        except json.JSONDecodeError as error:
            raise SafetensorsError(f"{where}: not valid JSON ({error})") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
        ):
            raise SafetensorsError(f"{where}: weight_map must map tensor names to file names")
        directory = os.path.dirname(self.path)
        self._shards = {}
        for shard in sorted(set(weight_map.values())):
            # Shard names are plain file names next to the index; anything else (a path
            # with separators, "..") could read outside the checkpoint directory.
            if os.path.basename(shard) != shard or shard in ("", ".", ".."):
                raise SafetensorsError(f"{where}: shard name {shard!r} must be a plain file name")
            shard_path = os.path.join(directory, shard)
            if not os.path.isfile(shard_path):
                raise SafetensorsError(f"{where}: shard {shard!r} does not exist")
            self._shards[shard] = SafetensorsFile(shard_path)
        for name, shard in weight_map.items():
            if name not in self._shards[shard]:
                raise SafetensorsError(f"{where}: tensor {name!r} is not in shard {shard!r}")
        for shard, contents in self._shards.items():
            for name in contents:
                if weight_map.get(name) != shard:
                    raise SafetensorsError(
                        f"{where}: shard {shard!r} holds tensor {name!r} that the index "
                        f"assigns to {weight_map.get(name)!r}"
                    )
        self._weight_map = weight_map
        self.metadata = index.get("metadata", {})

    def __getitem__(self, name) -> np.ndarray:
        try:
            shard = self._weight_map[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None
        return self._shards[shard][name]

    def __iter__(self):
        return iter(self._weight_map)

    def __len__(self) -> int:
        return len(self._weight_map)

    def dtype(self, name) -> str:
        return self._shards[self._weight_map[name]].dtype(name)

    def shape(self, name) -> tuple:
        return self._shards[self._weight_map[name]].shape(name)


def open_checkpoint(path):
    """Open a safetensors file, an index file, or a directory holding either.

    In a directory ``model.safetensors`` is preferred, then
    ``model.safetensors.index.json``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        for candidate in ("model.safetensors", "model.safetensors.index.json"):
            if os.path.isfile(os.path.join(path, candidate)):
                return open_checkpoint(os.path.join(path, candidate))
        raise FileNotFoundError(
            f"{path} holds neither model.safetensors nor model.safetensors.index.json "
            f"(only safetensors checkpoints are supported; convert .bin files first)"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    if path.endswith(".json"):
        return ShardedCheckpoint(path)
    return SafetensorsFile(path)


def load_file(path) -> dict:
    """Read every tensor of a checkpoint (file, index or directory) into a dict."""
    checkpoint = open_checkpoint(path)
    return {name: checkpoint[name] for name in checkpoint}


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write NumPy arrays to a safetensors file (little-endian, in the order given)."""
    codes = {dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype: code
             for code, dtype in _DTYPES.items() if code != "BF16"}
    header, offset = {}, 0
    arrays = []
    for name, value in tensors.items():
        array = np.asarray(value)
        key = array.dtype.newbyteorder("<") if array.dtype.itemsize > 1 else array.dtype
        if key not in codes:
            raise TypeError(f"tensor {name!r} has dtype {array.dtype}, which safetensors "
                            f"cannot store")
        array = np.ascontiguousarray(array, dtype=key)
        header[name] = {"dtype": codes[key], "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keeps the data 8-byte aligned, as the reference does
    with open(path, "wb") as handle:
        handle.write(len(text).to_bytes(8, "little"))
        handle.write(text)
        for array in arrays:
            handle.write(array.tobytes())
