"""The NumPy-only safetensors reader: round trips, dtype conversion, shards, corrupt files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from padfree.safetensors import (
    SafetensorsError,
    SafetensorsFile,
    load_file,
    open_checkpoint,
    save_file,
)

_CODES = {
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits by round-to-nearest-even, written independently of the reader."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def write(path, tensors, *, header_override=None, pad=0, metadata=None, extra_bytes=b""):
    """A minimal safetensors writer; `tensors` maps name -> array or ("BF16", bits)."""
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        if isinstance(value, tuple):
            code, array = value
        else:
            code, array = _CODES[value.dtype], value
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    if header_override is not None:
        header = header_override(header)
    text = (header if isinstance(header, bytes) else json.dumps(header).encode()) + b" " * pad
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(text)) + text + b"".join(chunks) + extra_bytes)
    return path


def test_round_trip_dtypes(tmp_path, rng):
    tensors = {
        "a": rng.standard_normal((3, 5)).astype(np.float32),
        "b": rng.standard_normal((7,)).astype(np.float16),
        "c": rng.standard_normal((2, 2, 3)),
        "ids": rng.integers(-5, 5, size=(4,)).astype(np.int64),
        "flags": rng.random(6) > 0.5,
        "scalar": np.float32(rng.standard_normal()).reshape(()),
        "empty": np.zeros((0, 4), np.float32),
    }
    # pad=3 puts the float32 data off a 4-byte boundary: the reader must still be right.
    path = write(tmp_path / "m.safetensors", tensors, pad=3, metadata={"format": "np"})
    loaded = SafetensorsFile(path)
    assert set(loaded) == set(tensors) and loaded.metadata == {"format": "np"}
    for name, value in tensors.items():
        got = loaded[name]
        assert got.shape == value.shape, name
        if value.dtype.kind == "f":
            assert got.dtype == np.float32
            # float16 -> float32 and float64 -> float32 are the only roundings.
            np.testing.assert_array_equal(got, value.astype(np.float32))
        else:
            assert got.dtype == value.dtype
            np.testing.assert_array_equal(got, value)


def test_bf16_widened_exactly(tmp_path, rng):
    values = rng.standard_normal((5, 9)).astype(np.float32)
    bits = _bf16_bits(values)
    path = write(tmp_path / "bf.safetensors", {"w": ("BF16", bits)})
    got = SafetensorsFile(path)["w"]
    assert got.dtype == np.float32 and got.shape == (5, 9)
    # Each value is its bf16 rounding: relative error at most 2**-9.
    np.testing.assert_allclose(got, values, rtol=2.0**-8)
    np.testing.assert_array_equal(got.view(np.uint32) & 0xFFFF, 0)


def test_float32_is_a_read_only_view(tmp_path, rng):
    value = rng.standard_normal((64, 8)).astype(np.float32)
    loaded = SafetensorsFile(write(tmp_path / "m.safetensors", {"w": value}))
    got = loaded["w"]
    assert not got.flags.writeable
    np.testing.assert_array_equal(got, value)


def test_matches_the_reference_writer(tmp_path, rng):
    numpy_backend = pytest.importorskip("safetensors.numpy")
    tensors = {"x": rng.standard_normal((4, 3)).astype(np.float32),
               "y": rng.standard_normal((2,)).astype(np.float16)}
    numpy_backend.save_file(tensors, str(tmp_path / "ref.safetensors"))
    loaded = load_file(tmp_path / "ref.safetensors")
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], value.astype(np.float32))


def test_sharded(tmp_path, rng):
    first = {"a": rng.standard_normal((2, 3)).astype(np.float32)}
    second = {"b": rng.standard_normal((4,)).astype(np.float32),
              "c": rng.standard_normal((1, 1)).astype(np.float32)}
    write(tmp_path / "model-00001-of-00002.safetensors", first)
    write(tmp_path / "model-00002-of-00002.safetensors", second)
    index = {"metadata": {"total_size": 40},
             "weight_map": {"a": "model-00001-of-00002.safetensors",
                            "b": "model-00002-of-00002.safetensors",
                            "c": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    loaded = open_checkpoint(tmp_path)
    assert sorted(loaded) == ["a", "b", "c"] and len(loaded) == 3
    for name, value in {**first, **second}.items():
        np.testing.assert_array_equal(loaded[name], value)

    index["weight_map"]["c"] = "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SafetensorsError, match="'c' is not in shard"):
        open_checkpoint(tmp_path)
    index["weight_map"]["c"] = "../model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SafetensorsError, match="plain file name"):
        open_checkpoint(tmp_path)
    index["weight_map"]["c"] = "missing.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SafetensorsError, match="does not exist"):
        open_checkpoint(tmp_path)
    del index["weight_map"]["c"]
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(SafetensorsError, match="holds tensor 'c'"):
        open_checkpoint(tmp_path)


def test_directory_without_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        open_checkpoint(tmp_path)


def _shift(name, delta):
    def edit(header):
        header[name]["data_offsets"][0] += delta
        header[name]["data_offsets"][1] += delta
        return header
    return edit


def _set(name, key, value):
    def edit(header):
        header[name][key] = value
        return header
    return edit


@pytest.mark.parametrize(
    "override, extra, message",
    [
        (lambda h: b"{not json", b"", "not valid UTF-8 JSON"),
        (lambda h: b"\xff\xfe{}", b"", "not valid UTF-8 JSON"),
        (lambda h: b"[1, 2]", b"", "must be a JSON object"),
        (_set("a", "dtype", "F8"), b"", "unsupported dtype 'F8'"),
        (_set("a", "shape", [2, -3]), b"", "non-negative ints"),
        (_set("a", "shape", [2, 3.0]), b"", "non-negative ints"),
        (_set("a", "shape", [5, 3]), b"", "needs 60 bytes"),
        (_set("a", "data_offsets", [24, 0]), b"", "0 <= begin <= end"),
        (_set("a", "data_offsets", [0]), b"", "0 <= begin <= end"),
        (_set("a", "extra", 1), b"", "unknown \\['extra'\\]"),
        (lambda h: {**h, "a": [1]}, b"", "must be an object"),
        (lambda h: {**h, "__metadata__": {"k": 1}}, b"", "__metadata__"),
        (_shift("b", 4), b"", "starts at byte 28"),
        (_shift("b", -4), b"", "starts at byte 20"),
        (None, b"\0\0\0\0", "cover 40 bytes but the file holds 44"),
    ],
)
def test_corrupt_headers(tmp_path, override, extra, message):
    tensors = {"a": np.ones((2, 3), np.float32), "b": np.ones((4,), np.float32)}
    path = write(tmp_path / "bad.safetensors", tensors, header_override=override,
                 extra_bytes=extra)
    with pytest.raises(SafetensorsError, match=message):
        SafetensorsFile(path)


def test_truncated_files(tmp_path):
    path = write(tmp_path / "m.safetensors", {"a": np.ones((4, 4), np.float32)})
    data = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[:5])
    with pytest.raises(SafetensorsError, match="too short"):
        SafetensorsFile(tmp_path / "short.safetensors")
    (tmp_path / "cut_header.safetensors").write_bytes(data[:20])
    with pytest.raises(SafetensorsError, match="runs past the end"):
        SafetensorsFile(tmp_path / "cut_header.safetensors")
    (tmp_path / "cut_data.safetensors").write_bytes(data[:-4])
    with pytest.raises(SafetensorsError, match="cover 64 bytes but the file holds 60"):
        SafetensorsFile(tmp_path / "cut_data.safetensors")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(SafetensorsError, match="exceeds the limit"):
        SafetensorsFile(tmp_path / "huge.safetensors")


def test_missing_tensor_names_the_key(tmp_path):
    loaded = SafetensorsFile(write(tmp_path / "m.safetensors", {"a": np.ones(2, np.float32)}))
    with pytest.raises(KeyError, match="no tensor named 'zz'"):
        loaded["zz"]


def test_save_file_round_trip(tmp_path, rng):
    tensors = {"w": rng.standard_normal((3, 4)).astype(np.float32),
               "h": rng.standard_normal(5).astype(np.float16),
               "ids": rng.integers(0, 9, size=(2, 2)).astype(np.int64),
               "big_endian": rng.standard_normal(3).astype(">f4")}
    save_file(tensors, tmp_path / "s.safetensors", metadata={"format": "np"})
    loaded = SafetensorsFile(tmp_path / "s.safetensors")
    assert loaded.metadata == {"format": "np"} and loaded.dtype("h") == "F16"
    for name, value in tensors.items():
        np.testing.assert_array_equal(loaded[name], value.astype(loaded[name].dtype))
    assert loaded["w"].ctypes.data % 8 == 0  # the header is padded to keep data aligned
    numpy_backend = pytest.importorskip("safetensors.numpy")
    reference = numpy_backend.load_file(str(tmp_path / "s.safetensors"))
    np.testing.assert_array_equal(reference["ids"], tensors["ids"])
    with pytest.raises(TypeError, match="cannot store"):
        save_file({"c": np.ones(2, np.complex64)}, tmp_path / "c.safetensors")
