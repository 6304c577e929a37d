"""A sweep of odd inputs through every public entry point.

Each public function must either give the right answer or raise TypeError/ValueError naming
the argument; it must never crash, hang, leak a pybind11 "incompatible function arguments"
message, or modify the caller's arrays. Also: one object called from many Python threads,
and the package's public surface (import side effects, __all__, docstrings, the CLI).
"""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from _bert_reference import random_checkpoint
from encoder_reference import random_state

import padfree

D, HEADS, FF = 16, 2, 24


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(20261203)
    encoder = padfree.Encoder.from_state_dict(
        random_state(rng, 2, D, FF, final_norm=True), num_heads=HEADS)
    config, weights = random_checkpoint(rng, vocab=50, max_positions=12)
    bert = padfree.BertModel.from_state_dict(weights, config)
    return encoder, bert


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _raises_named(error, name, call):
    """`call` raises `error` whose message names `name` (not a pybind11 signature dump)."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert name in message, message
    assert "incompatible function arguments" not in message, message


# ---------------------------------------------------------------- crashes and leaked errors


def test_forward_packed_rejects_wrapping_uint64_offsets(models, rng):
    # np.diff of uint64 offsets never goes negative: 2**64 - 1 used to pass the check,
    # become -1 as int64 and corrupt the heap in C++.
    encoder, _ = models
    x = f32(rng, 5, D)
    for cu in (np.array([0, 2**64 - 1, 5], np.uint64), np.array([0, 2**63, 5], np.uint64)):
        _raises_named(ValueError, "cu_seqlens", lambda: encoder.forward_packed(x, cu))
    # Unsigned offsets that are in range still work and match int64 ones.
    good = encoder.forward_packed(x, np.array([0, 2, 5], np.uint32))
    np.testing.assert_array_equal(good, encoder.forward_packed(x, [0, 2, 5]))


@pytest.mark.parametrize("window, same_as", [(2**70, None), ((2**63, 1), (None, 1)),
                                              ((1, 2**64), (1, None))])
def test_encoder_huge_window_means_unbounded(models, rng, window, same_as):
    # A bound beyond int64 used to leak pybind11's "incompatible function arguments".
    encoder, _ = models
    x = f32(rng, 2, 5, D)
    expected = encoder(x, lengths=[5, 3], window=same_as)
    np.testing.assert_array_equal(encoder(x, lengths=[5, 3], window=window), expected)
    np.testing.assert_array_equal(
        encoder.forward_packed(x[0], [0, 5], window=window), expected[0])


@pytest.mark.parametrize("count", [2**31, 2**40, 10**6])
def test_num_threads_too_large_is_a_clear_error(models, rng, count):
    encoder, bert = models
    calls = [
        lambda: padfree.masked_softmax(f32(rng, 2, 3), num_threads=count),
        lambda: padfree.layer_norm(f32(rng, 2, 3), np.ones(3, np.float32),
                                   np.zeros(3, np.float32), num_threads=count),
        lambda: padfree.linear(f32(rng, 2, 3), f32(rng, 4, 3), num_threads=count),
        lambda: padfree.attention(*f32(rng, 3, 1, 1, 2, 4), num_threads=count),
        lambda: encoder(f32(rng, 1, 2, D), num_threads=count),
        lambda: bert(np.ones((1, 3), np.int64), num_threads=count),
    ]
    for call in calls:
        _raises_named(ValueError, "num_threads", call)


def test_encoder_activation_of_wrong_type_is_named(rng):
    state = random_state(rng, 1, D, FF)
    _raises_named(ValueError, "activation", lambda: padfree.Encoder.from_state_dict(
        state, num_heads=HEADS, activation=["relu"]))


def test_bert_config_of_wrong_type_is_named(rng):
    config, weights = random_checkpoint(rng)
    _raises_named(TypeError, "config", lambda: padfree.BertModel.from_state_dict(weights, [1]))


# ---------------------------------------------------------------- non-finite weights


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_layer_norm_rejects_non_finite_parameters(rng, bad, name):
    params = {"gamma": f32(rng, 7), "beta": f32(rng, 7)}
    params[name][3] = bad
    _raises_named(ValueError, name,
                  lambda: padfree.layer_norm(f32(rng, 2, 7), params["gamma"], params["beta"]))


# ---------------------------------------------------------------- SentenceEncoder masks


@pytest.mark.parametrize("mask", [np.full((2, 6), 2), np.full((2, 6), 0.5),
                                  np.full((2, 6), "a"), np.ones((2, 5), np.int64)])
def test_sentence_encoder_rejects_bad_attention_mask(models, rng, mask):
    _, bert = models
    encoder = padfree.SentenceEncoder(bert)
    ids = rng.integers(0, 50, (2, 6))
    with pytest.raises((TypeError, ValueError)) as info:
        encoder.encode(input_ids=ids, attention_mask=mask)
    assert "attention_mask" in str(info.value)


def test_sentence_encoder_float_and_bool_masks_agree(models, rng):
    _, bert = models
    encoder = padfree.SentenceEncoder(bert)
    ids = rng.integers(0, 50, (2, 6))
    keep = np.arange(6)[None] < np.array([[6], [3]])
    expected = encoder.encode(input_ids=ids, attention_mask=keep)
    for mask in (keep.astype(np.int32), keep.astype(np.float32)):
        np.testing.assert_array_equal(
            encoder.encode(input_ids=ids, attention_mask=mask), expected)


# ---------------------------------------------------------------- empty batches


def test_empty_batches_everywhere(models, rng):
    encoder, bert = models
    assert padfree.masked_softmax(np.zeros((0, 4), np.float32)).shape == (0, 4)
    assert padfree.masked_softmax(np.zeros((3, 0), np.float32), lengths=[0, 0, 0]).shape == (3, 0)
    assert padfree.linear(np.zeros((0, 3), np.float32), f32(rng, 4, 3)).shape == (0, 4)
    assert padfree.layer_norm(np.zeros((0, 3), np.float32), np.ones(3, np.float32),
                              np.zeros(3, np.float32)).shape == (0, 3)
    for shape in ((0, 2, 5, 4), (2, 2, 0, 4)):
        q = np.zeros(shape, np.float32)
        assert padfree.attention(q, q, q).shape == shape
    q = f32(rng, 2, 2, 5, 4)
    assert not padfree.attention(q, q, q, lengths=[0, 0]).any()
    for x, kwargs in ((np.zeros((0, 5, D), np.float32), {}),
                      (np.zeros((2, 0, D), np.float32), {}),
                      (f32(rng, 2, 5, D), {"lengths": [0, 0]}),
                      (f32(rng, 2, 5, D), {"src_key_padding_mask": np.ones((2, 5), bool)})):
        y = encoder(x, **kwargs)
        assert y.shape == x.shape and not y.any()
    assert encoder.forward_packed(np.zeros((0, D), np.float32), [0, 0, 0]).shape == (0, D)
    out = bert(np.zeros((0, 6), np.int64))
    assert out.last_hidden_state.shape == (0, 6, 32) and out.pooler_output.shape == (0, 32)
    out = bert(np.ones((2, 6), np.int64), np.zeros((2, 6), np.int64))
    assert not out.last_hidden_state.any() and not out.pooler_output.any()
    assert padfree.SentenceEncoder(bert).encode(input_ids=[]).shape == (0, 32)


# ---------------------------------------------------------------- layouts


def _layouts(array):
    """The same values as C order, Fortran order, negative strides and read-only."""
    flipped = np.ascontiguousarray(array[..., ::-1])[..., ::-1]
    read_only = array.copy()
    read_only.flags.writeable = False
    return [np.asfortranarray(array), flipped, read_only]


def test_layouts_give_identical_results(models, rng):
    encoder, bert = models
    x = f32(rng, 2, 5, D)
    expected = encoder(x, lengths=[5, 2])
    for variant in _layouts(x):
        np.testing.assert_array_equal(encoder(variant, lengths=[5, 2]), expected)
    q = f32(rng, 2, 2, 5, 4)
    expected = padfree.attention(q, q, q, lengths=[5, 2])
    for variant in _layouts(q):
        np.testing.assert_array_equal(padfree.attention(variant, variant, variant,
                                                        lengths=[5, 2]), expected)
    w, rows = f32(rng, 6, 5), f32(rng, 7, 5)
    expected = padfree.linear(rows, w)
    for variant in _layouts(rows):
        np.testing.assert_array_equal(padfree.linear(variant, w), expected)
    ids = rng.integers(0, 50, (2, 6))
    expected = bert(ids).last_hidden_state
    for variant in _layouts(ids):
        np.testing.assert_array_equal(bert(variant).last_hidden_state, expected)


def test_lengths_dtypes_and_lists_agree(models, rng):
    encoder, _ = models
    x = f32(rng, 3, 5, D)
    expected = encoder(x, lengths=np.array([5, 0, 2], np.int64))
    for lengths in ([5, 0, 2], np.array([5, 0, 2], np.int32), np.array([5, 0, 2], np.uint8)):
        np.testing.assert_array_equal(encoder(x, lengths=lengths), expected)
    np.testing.assert_array_equal(encoder(x.tolist(), lengths=[5, 0, 2]), expected)


# ---------------------------------------------------------------- caller arrays unchanged


def _every_public_call(models, rng):
    """(name, callable, arrays it receives) for each public entry point."""
    encoder, bert = models
    scores, mask = f32(rng, 2, 3, 6), rng.random((2, 1, 6)) > 0.3
    q, k, v = f32(rng, 3, 2, 2, 6, 4)
    attn_mask = f32(rng, 6, 6)
    x, w, b, res = f32(rng, 4, 5), f32(rng, 3, 5), f32(rng, 3), f32(rng, 4, 3)
    gamma, beta = f32(rng, 5), f32(rng, 5)
    batch, kpm = f32(rng, 2, 6, D), np.array([[0, 1, 0, 0, 1, 1], [0] * 6], bool)
    packed, cu = f32(rng, 7, D), np.array([0, 4, 7])
    ids, keep = rng.integers(0, 50, (2, 6)), np.array([[1, 1, 0, 1, 1, 0], [1] * 6])
    layer = padfree.Linear(w, b, "gelu")
    sentences = padfree.SentenceEncoder(bert, pooling="max")
    lengths = np.array([6, 3])
    return [
        ("masked_softmax", lambda: padfree.masked_softmax(scores, mask, lengths=lengths),
         [scores, mask, lengths]),
        ("attention", lambda: padfree.attention(q, k, v, key_padding_mask=kpm,
                                                attn_mask=attn_mask, is_causal=True),
         [q, k, v, kpm, attn_mask]),
        ("linear", lambda: padfree.linear(x, w, b, "relu", residual=res), [x, w, b, res]),
        ("Linear", lambda: layer(x, residual=res), [x, res]),
        ("layer_norm", lambda: padfree.layer_norm(x, gamma, beta, residual=x),
         [x, gamma, beta]),
        ("Encoder", lambda: encoder(batch, src_key_padding_mask=kpm, src_mask=attn_mask),
         [batch, kpm, attn_mask]),
        ("Encoder.forward_packed", lambda: encoder.forward_packed(packed, cu), [packed, cu]),
        ("BertModel", lambda: bert(ids, keep), [ids, keep]),
        ("BertModel.forward_packed", lambda: bert.forward_packed(ids.ravel(), [0, 5, 12]),
         [ids]),
        ("SentenceEncoder.encode", lambda: sentences.encode(input_ids=ids, attention_mask=keep),
         [ids, keep]),
    ]


def test_inputs_are_never_modified(models, rng):
    for name, call, arrays in _every_public_call(models, rng):
        before = [a.copy() for a in arrays]
        result = call()
        for index, (old, new) in enumerate(zip(before, arrays)):
            np.testing.assert_array_equal(new, old, err_msg=f"{name} changed argument {index}")
        outputs = [result] if isinstance(result, np.ndarray) else list(
            getattr(result, "values", lambda: [])())
        for output in outputs:
            assert not any(np.may_share_memory(output, a) for a in arrays), name


def test_weights_are_copied_at_load(rng):
    w, b = f32(rng, 3, 5), f32(rng, 3)
    x = f32(rng, 2, 5)
    layer = padfree.Linear(w, b)
    expected = layer(x)
    w[:] = 0
    b[:] = 0
    np.testing.assert_array_equal(layer(x), expected)
    state = random_state(rng, 1, D, FF)
    encoder = padfree.Encoder.from_state_dict(state, num_heads=HEADS)
    batch = f32(rng, 1, 4, D)
    expected = encoder(batch)
    for value in state.values():
        value[...] = 0
    np.testing.assert_array_equal(encoder(batch), expected)


# ---------------------------------------------------------------- threads


def _concurrent(call, arguments, workers=8):
    """Run `call` on every argument from `workers` Python threads at once."""
    results = [None] * len(arguments)
    errors = []
    start = threading.Barrier(workers)

    def work(worker):
        start.wait()
        try:
            for index in range(worker, len(arguments), workers):
                results[index] = call(arguments[index])
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def test_one_object_many_python_threads(models, rng):
    encoder, bert = models
    layer = padfree.Linear(f32(rng, 24, D), f32(rng, 24), "gelu_tanh")
    cases = [
        (layer, [f32(rng, int(n), D) for n in rng.integers(1, 40, 24)]),
        (lambda a: encoder(a[0], lengths=a[1], num_threads=1),
         [(f32(rng, 3, 9, D), rng.integers(0, 10, 3)) for _ in range(24)]),
        (lambda ids: bert(ids).last_hidden_state, [rng.integers(0, 50, (2, int(n)))
                                                   for n in rng.integers(1, 12, 24)]),
    ]
    for call, arguments in cases:
        serial = [call(a) for a in arguments]
        parallel = _concurrent(call, arguments)
        for one, other in zip(serial, parallel):
            np.testing.assert_array_equal(other, one)


# ---------------------------------------------------------------- public surface


def test_public_api_is_documented():
    assert isinstance(padfree.__version__, str) and padfree.__version__[0].isdigit()
    for name in padfree.__all__:
        if name == "__version__":
            continue
        obj = getattr(padfree, name)
        doc = obj.__doc__ or ""
        assert len(doc) > 80, f"padfree.{name} has no real docstring"
        assert ">>>" in doc, f"padfree.{name}'s docstring has no example"


def test_logger_is_silent_by_default():
    import logging

    logger = logging.getLogger("padfree")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)
    assert logger.level == logging.NOTSET


def _python(code_or_args):
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True,
                          timeout=120, env=_env())


def _env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def test_import_pulls_in_no_heavy_dependency():
    result = _python(["-c", "import sys, padfree; print(sorted(m for m in ("
                            "'torch', 'onnxruntime', 'tokenizers', 'transformers', 'tqdm') "
                            "if m in sys.modules))"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_help():
    result = _python(["-m", "padfree", "--help"])
    assert result.returncode == 0, result.stderr
    for command in ("embed", "bench"):
        assert command in result.stdout


@pytest.mark.parametrize("name", [n for n in padfree.__all__ if n != "__version__"])
def test_docstring_examples_run(name):
    # The examples are the first code a user copies: run them (examples that need a model
    # directory or torch are marked +SKIP in place).
    import doctest

    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    obj = getattr(padfree, name)
    for test in finder.find(obj, f"padfree.{name}", globs={"padfree": padfree, "np": np}):
        runner.run(test)
    assert runner.failures == 0, f"padfree.{name}: {runner.failures} failing example(s)"


@pytest.mark.parametrize("argv, words", [
    (["embed", "--model", "/nonexistent/model", "hi"], "config.json"),
    (["embed", "--file", "/nonexistent/sentences.txt"], "sentences.txt"),
    (["bench", "--model", "/nonexistent/model"], "config.json"),
])
def test_cli_user_errors_are_one_line(argv, words):
    result = _python(["-m", "padfree", *argv])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"padfree {argv[0]}: error:") and words in result.stderr


def test_safetensors_reader_survives_corruption(tmp_path, rng):
    # Random byte flips, truncations, header-length lies and ill-typed header fields: every
    # file either loads or raises SafetensorsError (a ValueError) - never another exception
    # (an unhashable dtype such as {"a": 1} used to raise TypeError) and never a crash.
    import json
    import struct

    from padfree import safetensors

    path = tmp_path / "good.safetensors"
    safetensors.save_file({"a": f32(rng, 3, 4), "b": np.arange(5, dtype=np.int64),
                           "c": f32(rng, 7).astype(np.float16)}, path)
    good = path.read_bytes()
    header_size = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + header_size])
    odd_values = [None, -1, 2**64, "x", [], [1], [0, 2**70], [-5, 3], 1.5, {"a": 1}, "F64",
                  [2**63, 2**63 + 4], [3, -4], [True, False], ["1", "2"]]
    variants = []
    for name in header:
        if name == "__metadata__":
            continue
        for field in ("dtype", "shape", "data_offsets"):
            for value in odd_values:
                changed = json.loads(json.dumps(header))
                changed[name][field] = value
                raw = json.dumps(changed).encode()
                variants.append(struct.pack("<Q", len(raw)) + raw + good[8 + header_size:])
    for size in (0, 1, 7, header_size - 1, header_size + 1, len(good), 2**63, 2**64 - 1):
        variants.append(struct.pack("<Q", size) + good[8:])
    for cut in rng.integers(0, len(good), 40):
        variants.append(good[:cut])
    for _ in range(200):
        data = bytearray(good)
        for index in rng.integers(0, len(good), rng.integers(1, 4)):
            data[index] = rng.integers(0, 256)
        variants.append(bytes(data))

    target = tmp_path / "variant.safetensors"
    for data in variants:
        target.write_bytes(data)
        try:
            checkpoint = safetensors.SafetensorsFile(target)
            for name in checkpoint:
                np.asarray(checkpoint[name]).sum()
        except ValueError:
            pass


@pytest.mark.parametrize("change, key", [
    ({"num_attention_heads": 0}, "num_attention_heads"),   # was ZeroDivisionError
    ({"hidden_size": "32"}, "hidden_size"),                # was silently int("32")
    ({"hidden_size": 32.5}, "hidden_size"),                # was silently truncated
    ({"num_hidden_layers": True}, "num_hidden_layers"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"vocab_size": -1}, "vocab_size"),
    ({"type_vocab_size": [2]}, "type_vocab_size"),
    ({"hidden_act": ["gelu"]}, "activation"),              # was TypeError: unhashable
    ({"model_type": ["bert"]}, "model_type"),              # was TypeError: unhashable
])
def test_bert_config_fields_are_checked(rng, change, key):
    config, weights = random_checkpoint(rng)
    config.update(change)
    _raises_named(ValueError, key, lambda: padfree.BertModel.from_state_dict(weights, config))


def test_encoder_src_mask_length_limit(models):
    # Beyond L = 46340 a (query, key) offset overflows the kernels' 31-bit mask addressing:
    # a clear error before anything is allocated (the mask here is a stride-0 view).
    encoder, _ = models
    length = 46341
    x = np.zeros((1, length, D), np.float32)
    src_mask = np.broadcast_to(np.ones((1, 1), bool), (length, length))
    _raises_named(ValueError, "src_mask", lambda: encoder(x, lengths=[2], src_mask=src_mask))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_stays_in_its_sequence(models, rng, bad):
    # A NaN/inf token poisons only its own sequence; one at a padded position is never read.
    encoder, _ = models
    x = f32(rng, 3, 7, D)
    lengths = [7, 5, 6]
    clean = encoder(x, lengths=lengths)
    inside, padded = x.copy(), x.copy()
    inside[1, 2, 3] = bad
    padded[1, 6, 0] = bad
    poisoned = encoder(inside, lengths=lengths)
    np.testing.assert_array_equal(poisoned[[0, 2]], clean[[0, 2]])
    assert np.isnan(poisoned[1, :5]).all() and not poisoned[1, 5:].any()
    np.testing.assert_array_equal(encoder(padded, lengths=lengths), clean)
    rows, weight = f32(rng, 50, D), f32(rng, 24, D)
    poisoned_rows = rows.copy()
    poisoned_rows[7, 3] = bad
    np.testing.assert_array_equal(np.delete(padfree.linear(poisoned_rows, weight), 7, 0),
                                  np.delete(padfree.linear(rows, weight), 7, 0))


@pytest.mark.parametrize("sentences", [b"bytes are not text", [b"x"], ["ok", None], [1, 2]])
def test_sentence_encoder_rejects_non_text(models, sentences):
    # str() of these used to be tokenised: b"x" became the text "b'x'", 1 became "1".
    _, bert = models
    _raises_named(TypeError, "sentences", lambda: padfree.SentenceEncoder(bert).encode(sentences))


@pytest.mark.parametrize("argv", [["bench", "--batch", "0"], ["bench", "--repeats", "0"],
                                  ["bench", "--min-length", "10", "--max-length", "5"],
                                  ["embed", "--batch-size", "0", "x"], ["demo", "--length", "-1"],
                                  ["embed", "--threads", "two", "x"]])
def test_cli_bad_numbers_are_usage_errors(argv):
    # These used to run: --repeats 0 printed "nan ms", --batch 0 a NumPy reduction error.
    result = _python(["-m", "padfree", *argv])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "error:" in result.stderr


def _unaligned(array):
    """A copy of `array` whose data starts one byte past an aligned address."""
    buffer = bytearray(array.nbytes + 1)
    copy = np.ndarray(array.shape, array.dtype, buffer=buffer, offset=1)
    copy[...] = array
    return copy


def test_unaligned_inputs(models, rng):
    # np.ascontiguousarray keeps a contiguous but misaligned array as it is, so the kernels
    # used to read floats from odd addresses (UBSan: "load of misaligned address" in
    # gemm.cpp); inputs are now copied when unaligned. Results must equal aligned ones.
    encoder, _ = models
    x, w, b = f32(rng, 5, 7), f32(rng, 6, 7), f32(rng, 6)
    res, gamma = f32(rng, 5, 6), f32(rng, 7)
    np.testing.assert_array_equal(
        padfree.linear(_unaligned(x), _unaligned(w), _unaligned(b), residual=_unaligned(res)),
        padfree.linear(x, w, b, residual=res))
    np.testing.assert_array_equal(
        padfree.layer_norm(_unaligned(x), _unaligned(gamma), _unaligned(gamma),
                           residual=_unaligned(x)),
        padfree.layer_norm(x, gamma, gamma, residual=x))
    scores, lengths = f32(rng, 4, 9), np.array([9, 3, 0, 5])
    bias = np.where(rng.random((4, 9)) > 0.3, 0, -np.inf).astype(np.float32)
    np.testing.assert_array_equal(
        padfree.masked_softmax(_unaligned(scores), _unaligned(bias), lengths=_unaligned(lengths)),
        padfree.masked_softmax(scores, bias, lengths=lengths))
    q, attn_mask = f32(rng, 2, 2, 6, 4), f32(rng, 6, 6)
    np.testing.assert_array_equal(
        padfree.attention(_unaligned(q), _unaligned(q), _unaligned(q),
                          lengths=_unaligned(np.array([6, 3])), attn_mask=_unaligned(attn_mask)),
        padfree.attention(q, q, q, lengths=[6, 3], attn_mask=attn_mask))
    batch = f32(rng, 2, 6, D)
    np.testing.assert_array_equal(
        encoder(_unaligned(batch), lengths=_unaligned(np.array([6, 2])),
                src_mask=_unaligned(attn_mask)),
        encoder(batch, lengths=[6, 2], src_mask=attn_mask))
    np.testing.assert_array_equal(
        encoder.forward_packed(_unaligned(batch[0]), _unaligned(np.array([0, 2, 6]))),
        encoder.forward_packed(batch[0], [0, 2, 6]))
    state = random_state(rng, 1, D, FF)
    np.testing.assert_array_equal(
        padfree.Encoder.from_state_dict({k: _unaligned(v) for k, v in state.items()},
                                        num_heads=HEADS)(batch),
        padfree.Encoder.from_state_dict(state, num_heads=HEADS)(batch))


@pytest.mark.parametrize("kwargs, name", [({"window": (True, 1)}, "window"),
                                          ({"window": (1, np.True_)}, "window"),
                                          ({"scale": True}, "scale")])
def test_attention_rejects_bools_as_numbers(rng, kwargs, name):
    # The encoder already refused window=True; attention took True as 1.
    q = f32(rng, 1, 1, 4, 2)
    _raises_named(TypeError, name, lambda: padfree.attention(q, q, q, **kwargs))


def test_float64_min_masks_are_minus_infinity_without_warnings(models, rng):
    # Hugging Face builds additive masks from finfo(float64).min; cast to float32 that is
    # -inf, exactly what it means. It used to raise "overflow encountered in cast".
    import warnings

    encoder, _ = models
    low = np.finfo(np.float64).min
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = f32(rng, 2, 4)
        np.testing.assert_array_equal(
            padfree.masked_softmax(scores, np.array([0, low, 0, 0])),
            padfree.masked_softmax(scores, np.array([True, False, True, True])))
        q = f32(rng, 1, 1, 4, 2)
        additive = np.where(np.tri(4, dtype=bool), 0.0, low)
        np.testing.assert_array_equal(padfree.attention(q, q, q, attn_mask=additive),
                                      padfree.attention(q, q, q, is_causal=True))
        x = f32(rng, 1, 4, D)
        np.testing.assert_array_equal(encoder(x, src_mask=additive), encoder(x, is_causal=True))


def _bad_calls(encoder, bert, rng):
    """(argument named in the error, error type, call) for a sweep of bad inputs."""
    s, q = f32(rng, 2, 3, 5), f32(rng, 2, 2, 5, 4)
    x, w = f32(rng, 2, 3), f32(rng, 4, 3)
    one, zero = np.ones(3, np.float32), np.zeros(3, np.float32)
    batch, ids = f32(rng, 2, 5, D), rng.integers(0, 50, (2, 6))
    return [
        ("scores", TypeError, lambda: padfree.masked_softmax(np.ones((2, 3), np.int32))),
        ("scores", TypeError, lambda: padfree.masked_softmax(None)),
        ("scores", ValueError, lambda: padfree.masked_softmax(np.float32(1))),
        ("lengths", ValueError, lambda: padfree.masked_softmax(s, lengths=[-1, 1])),
        ("lengths", ValueError, lambda: padfree.masked_softmax(s, lengths=[6, 1])),
        ("lengths", TypeError, lambda: padfree.masked_softmax(s, lengths=[1.0, 2.0])),
        ("mask", TypeError, lambda: padfree.masked_softmax(s, np.ones(5, np.int8))),
        ("mask", ValueError, lambda: padfree.masked_softmax(s, np.ones(4, bool))),
        ("axis", ValueError, lambda: padfree.masked_softmax(s, axis=3)),
        ("out", ValueError, lambda: padfree.masked_softmax(s, out=np.empty((2, 3), np.float32))),
        ("num_threads", ValueError, lambda: padfree.masked_softmax(s, num_threads=0)),
        ("x", TypeError, lambda: padfree.linear(x.astype(np.float64), w)),
        ("x", ValueError, lambda: padfree.linear(f32(rng, 2, 4), w)),
        ("weight", ValueError, lambda: padfree.linear(x, np.full((4, 3), np.nan, np.float32))),
        ("bias", ValueError, lambda: padfree.linear(x, w, bias=f32(rng, 3))),
        ("residual", ValueError, lambda: padfree.linear(x, w, residual=f32(rng, 2, 3))),
        ("activation", ValueError, lambda: padfree.linear(x, w, activation="tanh")),
        ("gamma", ValueError, lambda: padfree.layer_norm(x, np.ones(4, np.float32), zero)),
        ("eps", ValueError, lambda: padfree.layer_norm(x, one, zero, eps=0)),
        ("k", ValueError, lambda: padfree.attention(q, q[:, :, :4], q)),
        ("v", TypeError, lambda: padfree.attention(q, q, q.astype(np.float64))),
        ("q", ValueError, lambda: padfree.attention(q[0], q[0], q[0])),
        ("lengths", ValueError, lambda: padfree.attention(q, q, q, lengths=[1, 2, 3])),
        ("key_padding_mask", TypeError,
         lambda: padfree.attention(q, q, q, key_padding_mask=np.zeros((2, 5), int))),
        ("attn_mask", ValueError,
         lambda: padfree.attention(q, q, q, attn_mask=np.ones((3, 5, 5), bool))),
        ("is_causal", TypeError, lambda: padfree.attention(q, q, q, is_causal=1)),
        ("scale", ValueError, lambda: padfree.attention(q, q, q, scale=np.inf)),
        ("x", ValueError, lambda: encoder(f32(rng, 2, 5, D + 1))),
        ("x", TypeError, lambda: encoder(batch.astype(np.int64))),
        ("lengths", ValueError, lambda: encoder(batch, lengths=[6, 1])),
        ("attention_mask", ValueError, lambda: encoder(batch, attention_mask=np.full((2, 5), 2))),
        ("src_key_padding_mask", ValueError,
         lambda: encoder(batch, src_key_padding_mask=np.ones((2, 4), bool))),
        ("lengths and attention_mask", ValueError,
         lambda: encoder(batch, lengths=[1, 1], attention_mask=np.ones((2, 5), bool))),
        ("src_mask", ValueError, lambda: encoder(batch, src_mask=np.ones((1, 5, 5), bool))),
        ("window", ValueError, lambda: encoder(batch, window=[1, 2])),
        ("cu_seqlens", ValueError, lambda: encoder.forward_packed(batch[0], [0, 3, 2, 5])),
        ("input_ids", ValueError, lambda: bert(ids + 50)),
        ("input_ids", ValueError, lambda: bert(ids - 60)),
        ("input_ids", TypeError, lambda: bert(ids.astype(float))),
        ("input_ids", ValueError, lambda: bert(rng.integers(0, 50, (1, 13)))),
        ("attention_mask", ValueError, lambda: bert(ids, np.ones((2, 5)))),
        ("token_type_ids", ValueError, lambda: bert(ids, None, np.full((2, 6), 2))),
        ("position_ids", ValueError,
         lambda: bert.forward_packed(ids.ravel(), [0, 12], position_ids=np.arange(12) + 1)),
        ("batch_size", ValueError,
         lambda: padfree.SentenceEncoder(bert).encode(input_ids=[[1]], batch_size=0)),
    ]


def test_bad_input_sweep(models, rng):
    encoder, bert = models
    for name, error, call in _bad_calls(encoder, bert, rng):
        _raises_named(error, name, call)
