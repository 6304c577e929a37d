"""padfree.Encoder / EncoderLayer: agreement with a float64 reference and with PyTorch, masks,
invariance to batch and threads, concurrency, pickling, and every bad-input path."""

from __future__ import annotations

import math
import pickle
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from encoder_reference import random_state, reference_encoder
from mask_reference import structured_keep

import padfree

# PyTorch's notices about its nested-tensor prototype and mask types are not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
    pytest.mark.filterwarnings("ignore:Support for mismatched src_key_padding_mask:UserWarning"),
]

# float32 kernels against the float64 reference, a few layers deep: each layer adds a few
# float32 roundings of O(1) activations over sums of up to ~256 terms (relative 2^-24 * sqrt
# of the length) and LayerNorm divides by a standard deviation of ~1, so errors stay around
# 1e-5; 1e-4 leaves room for the vectorised exp/erf/tanh bounds.
TOL = 1e-4


def make_encoder(rng, *, layers=2, d_model=32, heads=4, dim_ff=48, norm_first=False,
                 activation="relu", final_norm=False, eps=1e-5):
    state = random_state(rng, layers, d_model, dim_ff, final_norm=final_norm)
    encoder = padfree.Encoder.from_state_dict(
        state, num_heads=heads, norm_first=norm_first, activation=activation,
        layer_norm_eps=eps)
    return encoder, state


def batch_input(rng, batch, length, d_model):
    return rng.standard_normal((batch, length, d_model)).astype(np.float32)


def assert_close_valid(actual, expected, keep, tol=TOL):
    assert actual.dtype == np.float32
    assert np.all(actual[~keep] == 0), "padded positions must be exactly zero"
    error = np.abs(actual[keep] - expected[keep]).max(initial=0.0)
    assert error < tol, f"max abs error {error:.3g} >= {tol}"


def prefix_keep(lengths, length):
    return np.arange(length)[None, :] < np.asarray(lengths)[:, None]


# ---------------------------------------------------------------------------- reference


@pytest.mark.parametrize("norm_first", [False, True], ids=["post", "pre"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_matches_reference(rng, isa, num_threads, norm_first, activation):
    encoder, state = make_encoder(rng, norm_first=norm_first, activation=activation,
                                  final_norm=norm_first)
    lengths = np.array([9, 1, 17, 0, 12])
    x = batch_input(rng, 5, 17, 32)
    y = encoder(x, lengths=lengths, num_threads=num_threads)
    keep = prefix_keep(lengths, 17)
    expected = reference_encoder(state, x, num_heads=4, keep=keep, norm_first=norm_first,
                                 activation=activation)
    assert_close_valid(y, expected, keep)


@pytest.mark.parametrize("d_model,heads,dim_ff", [(8, 1, 8), (24, 3, 40), (64, 8, 96),
                                                  (48, 2, 17)])
def test_shapes_match_reference(rng, d_model, heads, dim_ff):
    encoder, state = make_encoder(rng, d_model=d_model, heads=heads, dim_ff=dim_ff, layers=3)
    lengths = np.array([3, 33, 20])
    x = batch_input(rng, 3, 33, d_model)
    keep = prefix_keep(lengths, 33)
    expected = reference_encoder(state, x, num_heads=heads, keep=keep)
    assert_close_valid(encoder(x, lengths=lengths), expected, keep)


def test_key_padding_with_holes(rng):
    encoder, state = make_encoder(rng)
    keep = rng.random((4, 15)) < 0.6
    keep[0] = False  # a sequence with no tokens at all
    keep[1] = True
    x = batch_input(rng, 4, 15, 32)
    expected = reference_encoder(state, x, num_heads=4, keep=keep)
    assert_close_valid(encoder(x, src_key_padding_mask=~keep), expected, keep)
    assert_close_valid(encoder(x, attention_mask=keep), expected, keep)
    assert_close_valid(encoder(x, attention_mask=keep.astype(np.int64)), expected, keep)


def test_prefix_masks_equal_lengths(rng):
    encoder, _ = make_encoder(rng)
    lengths = np.array([4, 11, 7])
    x = batch_input(rng, 3, 11, 32)
    keep = prefix_keep(lengths, 11)
    by_lengths = encoder(x, lengths=lengths)
    assert np.array_equal(by_lengths, encoder(x, src_key_padding_mask=~keep))
    assert np.array_equal(by_lengths, encoder(x, attention_mask=keep.astype(np.int32)))


def test_no_padding_arguments_means_all_real(rng):
    encoder, state = make_encoder(rng, final_norm=True)
    x = batch_input(rng, 2, 6, 32)
    expected = reference_encoder(state, x, num_heads=4)
    assert_close_valid(encoder(x), expected, np.ones((2, 6), bool))


def _expand_src_mask(mask, batch, heads, length):
    """Any accepted src_mask shape -> (B, H, L, L)."""
    if mask.ndim == 2:
        return np.broadcast_to(mask, (batch, heads, length, length))
    if mask.ndim == 4:
        return mask
    if mask.shape[0] == batch * heads and heads > 1:
        return mask.reshape(batch, heads, length, length)
    return np.broadcast_to(mask[:, None], (batch, heads, length, length))


SRC_MASK_SHAPES = ["LL", "BLL", "BHLL_flat", "BHLL"]


def _src_mask_shape(kind, batch, heads, length):
    return {"LL": (length, length), "BLL": (batch, length, length),
            "BHLL_flat": (batch * heads, length, length),
            "BHLL": (batch, heads, length, length)}[kind]


@pytest.mark.parametrize("kind", SRC_MASK_SHAPES)
@pytest.mark.parametrize("boolean", [True, False], ids=["bool", "additive"])
def test_src_mask_matches_reference(rng, kind, boolean):
    encoder, state = make_encoder(rng)
    batch, heads, length = 3, 4, 10
    keep = rng.random((batch, length)) < 0.8
    shape = _src_mask_shape(kind, batch, heads, length)
    if boolean:
        mask = rng.random(shape) < 0.7
        full = _expand_src_mask(mask, batch, heads, length)
        attn_keep, attn_bias = full, None
    else:
        mask = rng.standard_normal(shape).astype(np.float32)
        mask[rng.random(shape) < 0.2] = -np.inf
        full = _expand_src_mask(mask, batch, heads, length)
        attn_keep, attn_bias = np.ones(full.shape, bool), np.where(np.isinf(full), 0, full)
        attn_keep = attn_keep & ~np.isinf(full)
    x = batch_input(rng, batch, length, 32)
    expected = reference_encoder(state, x, num_heads=heads, keep=keep, attn_keep=attn_keep,
                                 attn_bias=attn_bias)
    assert_close_valid(encoder(x, attention_mask=keep, src_mask=mask), expected, keep)




@pytest.mark.parametrize("causal,window", [(True, None), (False, (2, 2)), (True, (3, None)),
                                           (False, (None, 1)), (True, (0, 0))])
def test_causal_and_window(rng, causal, window):
    encoder, state = make_encoder(rng, norm_first=True)
    batch, heads, length = 3, 4, 12
    keep = rng.random((batch, length)) < 0.75  # holes: masks use original positions
    x = batch_input(rng, batch, length, 32)
    attn_keep = np.broadcast_to(structured_keep(length, causal, window),
                                (batch, heads, length, length))
    expected = reference_encoder(state, x, num_heads=heads, keep=keep, attn_keep=attn_keep,
                                 norm_first=True)
    arg = window if window is None or window[0] != window[1] else window[0]
    y = encoder(x, attention_mask=keep, is_causal=causal, window=arg)
    assert_close_valid(y, expected, keep)


def test_causal_combines_with_src_mask(rng):
    encoder, state = make_encoder(rng)
    batch, heads, length = 2, 4, 9
    mask = rng.random((length, length)) < 0.6
    x = batch_input(rng, batch, length, 32)
    attn_keep = np.broadcast_to(structured_keep(length, causal=True) & mask,
                                (batch, heads, length, length))
    expected = reference_encoder(state, x, num_heads=heads, attn_keep=attn_keep)
    y = encoder(x, src_mask=mask, is_causal=True)
    assert_close_valid(y, expected, np.ones((batch, length), bool))


def test_fully_masked_queries_get_zero_attention(rng):
    # Rows whose keys are all removed: PyTorch gives NaN; padfree a zero attention output,
    # so the token continues through the residual path as the reference computes it.
    encoder, state = make_encoder(rng)
    batch, heads, length = 2, 4, 6
    mask = np.full((length, length), -np.inf, np.float32)
    mask[::2] = 0.0  # odd query positions see nothing
    x = batch_input(rng, batch, length, 32)
    full = np.broadcast_to(mask, (batch, heads, length, length))
    expected = reference_encoder(state, x, num_heads=heads, attn_keep=~np.isinf(full),
                                 attn_bias=np.zeros(full.shape))
    y = encoder(x, src_mask=mask)
    assert np.isfinite(y).all()
    assert_close_valid(y, expected, np.ones((batch, length), bool))


_PROPERTY_ENCODER = {}


def _property_encoder(norm_first):
    """One small encoder per norm order, built once (hypothesis reruns the test body)."""
    if norm_first not in _PROPERTY_ENCODER:
        rng = np.random.default_rng(99 + norm_first)
        state = random_state(rng, 2, 16, 24, final_norm=norm_first)
        encoder = padfree.Encoder.from_state_dict(state, num_heads=2, norm_first=norm_first,
                                                  activation="gelu")
        _PROPERTY_ENCODER[norm_first] = (encoder, state)
    return _PROPERTY_ENCODER[norm_first]


@given(batch=st.integers(1, 4), length=st.integers(1, 12), norm_first=st.booleans(),
       padding=st.sampled_from(["none", "lengths", "holes"]),
       src_mask=st.sampled_from([None, "bool", "additive"]), causal=st.booleans(),
       window=st.one_of(st.none(), st.integers(0, 4)), seed=st.integers(0, 2**31 - 1))
def test_random_masks_match_reference(batch, length, norm_first, padding, src_mask, causal,
                                      window, seed):
    encoder, state = _property_encoder(norm_first)
    rng = np.random.default_rng(seed)
    heads = 2
    x = batch_input(rng, batch, length, 16)
    keep = np.ones((batch, length), bool)
    kwargs = {}
    if padding == "lengths":
        lengths = rng.integers(0, length + 1, size=batch)
        keep = prefix_keep(lengths, length)
        kwargs["lengths"] = lengths
    elif padding == "holes":
        keep = rng.random((batch, length)) < 0.6
        kwargs["src_key_padding_mask"] = ~keep
    attn_keep = np.broadcast_to(
        structured_keep(length, causal, None if window is None else (window, window)),
        (batch, heads, length, length))
    attn_bias = None
    if src_mask == "bool":
        mask = rng.random((batch, heads, length, length)) < 0.7
        attn_keep = attn_keep & mask
        kwargs["src_mask"] = mask
    elif src_mask == "additive":
        mask = rng.standard_normal((batch, length, length)).astype(np.float32)
        mask[rng.random(mask.shape) < 0.2] = -np.inf
        full = _expand_src_mask(mask, batch, heads, length)
        attn_keep = attn_keep & ~np.isinf(full)
        attn_bias = np.where(np.isinf(full), 0, full)
        kwargs["src_mask"] = mask
    expected = reference_encoder(state, x, num_heads=heads, keep=keep, attn_keep=attn_keep,
                                 attn_bias=attn_bias, norm_first=norm_first, activation="gelu")
    y = encoder(x, is_causal=causal, window=window, **kwargs)
    assert_close_valid(y, expected, keep)


def test_forward_packed_matches_padded(rng):
    encoder, _ = make_encoder(rng, final_norm=True)
    lengths = np.array([5, 0, 13, 2])
    x = batch_input(rng, 4, 13, 32)
    keep = prefix_keep(lengths, 13)
    cu = np.concatenate([[0], np.cumsum(lengths)])
    packed = encoder.forward_packed(x[keep], cu)
    assert packed.shape == (lengths.sum(), 32) and packed.dtype == np.float32
    assert np.array_equal(packed, encoder(x, lengths=lengths)[keep])
    causal = encoder.forward_packed(x[keep], cu, is_causal=True, window=(2, None))
    assert np.array_equal(causal, encoder(x, lengths=lengths, is_causal=True,
                                          window=(2, None))[keep])


def test_float64_input_is_rounded(rng):
    encoder, _ = make_encoder(rng)
    x = rng.standard_normal((2, 5, 32))
    assert np.array_equal(encoder(x), encoder(x.astype(np.float32)))


def test_empty_batches(rng):
    encoder, _ = make_encoder(rng)
    assert encoder(np.zeros((0, 4, 32), np.float32)).shape == (0, 4, 32)
    x = batch_input(rng, 2, 4, 32)
    y = encoder(x, lengths=[0, 0])
    assert y.shape == (2, 4, 32) and not y.any()
    assert encoder(np.zeros((3, 0, 32), np.float32)).shape == (3, 0, 32)
    out = encoder.forward_packed(np.zeros((0, 32), np.float32), [0, 0])
    assert out.shape == (0, 32)


def test_encoder_layer_keys_without_prefix(rng):
    state = random_state(rng, 1, 32, 40, prefixed=False)
    layer = padfree.EncoderLayer.from_state_dict(state, num_heads=2, activation="gelu")
    assert isinstance(layer, padfree.Encoder) and layer.num_layers == 1
    x = batch_input(rng, 2, 7, 32)
    keep = prefix_keep([7, 4], 7)
    expected = reference_encoder(state, x, num_heads=2, keep=keep, activation="gelu")
    assert_close_valid(layer(x, lengths=[7, 4]), expected, keep)
    assert set(layer.state_dict()) == set(state)


def test_properties_and_state_dict_round_trip(rng):
    encoder, state = make_encoder(rng, layers=3, norm_first=True, activation="gelu_tanh",
                                  final_norm=True, eps=1e-6)
    assert (encoder.num_layers, encoder.d_model, encoder.num_heads, encoder.dim_feedforward,
            encoder.norm_first, encoder.activation, encoder.layer_norm_eps,
            encoder.has_final_norm) == (3, 32, 4, 48, True, "gelu_tanh", 1e-6, True)
    exported = encoder.state_dict()
    assert set(exported) == set(state)
    for key, value in state.items():
        assert exported[key].dtype == np.float32
        assert np.array_equal(exported[key], value), key
    assert "Encoder(num_layers=3" in repr(encoder)


# ---------------------------------------------------------------------------- invariance


def test_batch_invariance_bit_for_bit(rng, num_threads):
    encoder, _ = make_encoder(rng, d_model=64, heads=8, dim_ff=96)
    lengths = np.array([37, 1, 64, 15, 50])
    x = batch_input(rng, 5, 64, 64)
    together = encoder(x, lengths=lengths, num_threads=num_threads)
    for b, n in enumerate(lengths):
        alone = encoder(x[b:b + 1, :n], num_threads=num_threads)
        assert np.array_equal(alone[0], together[b, :n]), f"sequence {b}"
        padded = encoder(x[b:b + 1], lengths=[n], num_threads=num_threads)
        assert np.array_equal(padded[0], together[b])


def test_batch_invariance_with_holes(rng):
    encoder, _ = make_encoder(rng)
    keep = rng.random((4, 20)) < 0.5
    x = batch_input(rng, 4, 20, 32)
    together = encoder(x, attention_mask=keep, is_causal=True)
    for b in range(4):
        alone = encoder(x[b:b + 1], attention_mask=keep[b:b + 1], is_causal=True)
        assert np.array_equal(alone[0], together[b])


def test_thread_count_invariance(rng):
    encoder, _ = make_encoder(rng, d_model=64, heads=4, dim_ff=128, norm_first=True)
    lengths = np.array([70, 3, 41, 128])
    x = batch_input(rng, 4, 128, 64)
    one = encoder(x, lengths=lengths, num_threads=1)
    for threads in (2, 3, 4):
        assert np.array_equal(one, encoder(x, lengths=lengths, num_threads=threads))


def test_num_threads_per_encoder(rng):
    state = random_state(rng, 1, 32, 48)
    encoder = padfree.Encoder.from_state_dict(state, num_heads=4, num_threads=1)
    assert encoder.num_threads == 1
    x = batch_input(rng, 2, 9, 32)
    assert np.array_equal(encoder(x), encoder(x, num_threads=2))
    assert pickle.loads(pickle.dumps(encoder)).num_threads == 1


def test_concurrent_python_threads_match_serial(rng):
    encoder, _ = make_encoder(rng, d_model=64, heads=8, dim_ff=128, layers=2)
    inputs = []
    for _ in range(8):
        lengths = rng.integers(1, 40, size=3)
        inputs.append((batch_input(rng, 3, 40, 64), lengths))
    serial = [encoder(x, lengths=n, num_threads=1) for x, n in inputs]
    results = [[None] * 5 for _ in inputs]
    barrier = threading.Barrier(len(inputs))

    def worker(index):
        x, n = inputs[index]
        barrier.wait()
        for repeat in range(5):
            results[index][repeat] = encoder(x, lengths=n, num_threads=1 + repeat % 2)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for index, expected in enumerate(serial):
        for got in results[index]:
            assert np.array_equal(got, expected), f"thread {index}"


def test_pickle_round_trip(rng):
    encoder, _ = make_encoder(rng, norm_first=True, activation="gelu", final_norm=True)
    clone = pickle.loads(pickle.dumps(encoder))
    assert type(clone) is padfree.Encoder and repr(clone) == repr(encoder)
    x = batch_input(rng, 3, 8, 32)
    assert np.array_equal(clone(x, lengths=[8, 2, 5]), encoder(x, lengths=[8, 2, 5]))
    layer = padfree.EncoderLayer.from_state_dict(random_state(rng, 1, 32, 48, prefixed=False),
                                                 num_heads=4)
    layer_clone = pickle.loads(pickle.dumps(layer))
    assert type(layer_clone) is padfree.EncoderLayer
    assert np.array_equal(layer_clone(x), layer(x))


# ---------------------------------------------------------------------------- bad input


def test_bad_state_dicts(rng):
    state = random_state(rng, 2, 32, 48, final_norm=True)
    build = padfree.Encoder.from_state_dict

    def expect(change, error, pattern, **kwargs):
        broken = dict(state)
        change(broken)
        with pytest.raises(error, match=pattern):
            build(broken, num_heads=4, **kwargs)

    expect(lambda s: s.update({"layers.0.extra.weight": s["norm.bias"]}), ValueError,
           r"unknown key 'layers\.0\.extra\.weight'")
    expect(lambda s: s.update({"norm.extra": s["norm.bias"]}), ValueError, "unknown key")
    expect(lambda s: s.pop("layers.1.linear2.bias"), ValueError,
           r"missing the key 'layers\.1\.linear2\.bias'")
    expect(lambda s: s.pop("norm.bias"), ValueError, r"missing the key 'norm\.bias'")
    expect(lambda s: [s.pop(k) for k in list(s) if k.startswith("layers.0.")], ValueError,
           r"missing the key 'layers\.0\.")
    expect(lambda s: s.update({"layers.1.linear1.weight": np.ones((48, 31), np.float32)}),
           ValueError, r"layers\.1\.linear1\.weight must have shape \(48, 32\)")
    expect(lambda s: s.update({"layers.0.self_attn.in_proj_weight":
                               np.ones((95, 32), np.float32)}),
           ValueError, r"layers\.0\.self_attn\.in_proj_weight must have shape")
    expect(lambda s: s.update({"layers.1.norm2.bias": np.ones(31, np.float32)}), ValueError,
           r"layers\.1\.norm2\.bias must have shape \(32,\)")

    def poison(value):
        def change(s):
            bad = s["layers.1.self_attn.out_proj.weight"].copy()
            bad[3, 4] = value
            s["layers.1.self_attn.out_proj.weight"] = bad
        return change

    expect(poison(np.nan), ValueError, r"layers\.1\.self_attn\.out_proj\.weight holds NaN")
    expect(poison(np.inf), ValueError, r"out_proj\.weight holds NaN or infinity")
    expect(lambda s: s.update({"norm.weight": np.full(32, 1e39)}), ValueError,
           r"norm\.weight holds NaN or infinity")
    expect(lambda s: s.update({"layers.0.linear1.bias": np.ones(48, np.int32)}), TypeError,
           r"layers\.0\.linear1\.bias must be a floating-point array")
    with pytest.raises(ValueError, match=r"unknown key 'layers\.0\."):
        padfree.EncoderLayer.from_state_dict(state, num_heads=4)
    with pytest.raises(ValueError, match="no encoder layer weights"):
        build({}, num_heads=4)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        build([1, 2], num_heads=4)


def test_bad_settings(rng):
    state = random_state(rng, 1, 32, 48)
    build = padfree.Encoder.from_state_dict
    with pytest.raises(ValueError, match="num_heads=5 must divide"):
        build(state, num_heads=5)
    with pytest.raises(ValueError, match="num_heads must be a positive int, got 0"):
        build(state, num_heads=0)
    with pytest.raises(TypeError, match="num_heads must be a positive int"):
        build(state, num_heads=4.0)
    with pytest.raises(ValueError, match="activation must be one of 'relu', 'gelu'"):
        build(state, num_heads=4, activation="swish")
    with pytest.raises(ValueError, match="layer_norm_eps must be a positive finite float"):
        build(state, num_heads=4, layer_norm_eps=0.0)
    with pytest.raises(TypeError, match="norm_first must be a bool"):
        build(state, num_heads=4, norm_first="yes")
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        build(state, num_heads=4, num_threads=0)
    with pytest.raises(TypeError, match="from_state_dict"):
        padfree.Encoder()


def test_bad_call_arguments(rng):
    encoder, _ = make_encoder(rng)
    x = batch_input(rng, 2, 5, 32)
    keep = np.ones((2, 5), bool)
    cases = [
        (dict(x=x[..., :31]), ValueError, r"x must have shape \(B, L, 32\), got \(2, 5, 31\)"),
        (dict(x=x[0]), ValueError, r"x must have shape \(B, L, 32\)"),
        (dict(x=x.astype(np.int32)), TypeError, "x must have dtype float32 or float64"),
        (dict(lengths=[1, 2], attention_mask=keep), ValueError,
         "at most one of .* got lengths and attention_mask"),
        (dict(src_key_padding_mask=~keep, attention_mask=keep), ValueError, "at most one"),
        (dict(lengths=[1, 2, 3]), ValueError, r"lengths must have shape \(2,\)"),
        (dict(lengths=[1, 6]), ValueError, r"lengths must lie in \[0, 5\].*got 6"),
        (dict(lengths=[-1, 2]), ValueError, "got -1"),
        (dict(lengths=[1.0, 2.0]), TypeError, "lengths must be an integer array"),
        (dict(src_key_padding_mask=keep[:, :4]), ValueError,
         r"src_key_padding_mask must have shape \(2, 5\)"),
        (dict(src_key_padding_mask=keep.astype(np.float32)), TypeError,
         "src_key_padding_mask must be boolean"),
        (dict(attention_mask=keep.astype(np.int64) * 2), ValueError, "only 0 and 1"),
        (dict(src_mask=np.ones((5, 4), bool)), ValueError,
         r"src_mask must have shape \(5, 5\), \(2, 5, 5\), \(8, 5, 5\) or \(2, 4, 5, 5\)"),
        (dict(src_mask=np.ones((3, 5, 5), bool)), ValueError, "src_mask must have shape"),
        (dict(src_mask=np.ones((5, 5), np.int64)), TypeError, "src_mask must be boolean"),
        (dict(is_causal=1), TypeError, "is_causal must be a bool"),
        (dict(window=-1), ValueError, r"window \(left\) must be a non-negative int"),
        (dict(window=(1, -2)), ValueError, r"window \(right\)"),
        (dict(window=1.5), TypeError, "window"),
        (dict(window=(1, 2, 3)), ValueError, "window must be an int or a pair"),
        (dict(num_threads=-1), ValueError, "num_threads must be a positive int"),
    ]
    for kwargs, error, pattern in cases:
        args = dict(kwargs)
        data = args.pop("x", x)
        with pytest.raises(error, match=pattern):
            encoder(data, **args)


def test_bad_forward_packed_arguments(rng):
    encoder, _ = make_encoder(rng)
    x = rng.standard_normal((6, 32)).astype(np.float32)
    with pytest.raises(ValueError, match=r"x_packed must have shape \(T, 32\)"):
        encoder.forward_packed(x[:, :5], [0, 6])
    with pytest.raises(ValueError, match="cu_seqlens must rise from 0 to 6"):
        encoder.forward_packed(x, [0, 4, 3, 6])
    with pytest.raises(ValueError, match="cu_seqlens must rise from 0 to 6"):
        encoder.forward_packed(x, [0, 5])
    with pytest.raises(ValueError, match="cu_seqlens must rise"):
        encoder.forward_packed(x, [1, 6])
    with pytest.raises(TypeError, match="cu_seqlens must be an integer array"):
        encoder.forward_packed(x, [0.0, 6.0])
    with pytest.raises(ValueError, match=r"cu_seqlens must have shape \(B \+ 1,\)"):
        encoder.forward_packed(x, [[0, 6]])


# ---------------------------------------------------------------------------- PyTorch


def _torch_encoder(torch, num_layers, d_model, heads, dim_ff, norm_first, activation,
                   final_norm, seed):
    torch.manual_seed(seed)
    act = {"relu": "relu", "gelu": "gelu",
           "gelu_tanh": torch.nn.GELU(approximate="tanh")}[activation]
    layer = torch.nn.TransformerEncoderLayer(d_model, heads, dim_ff, dropout=0.1,
                                             activation=act, batch_first=True,
                                             norm_first=norm_first)
    norm = torch.nn.LayerNorm(d_model, eps=1e-6) if final_norm else None
    module = torch.nn.TransformerEncoder(layer, num_layers, norm=norm,
                                         enable_nested_tensor=not norm_first)
    with torch.no_grad():  # move LayerNorms off (1, 0) so they matter
        for name, p in module.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return module.eval()


def _torch_run(torch, module, x, pad=None, mask=None, causal=False, fast=True):
    """PyTorch's output. fast=False runs with autograd on, which disables the fast path:
    that path returns wrong values for additive masks other than 0/-inf (torch 2.13)."""
    # Positional: the layer calls its mask src_mask, the stack calls it mask.
    args = (torch.from_numpy(x), None if mask is None else torch.from_numpy(mask),
            None if pad is None else torch.from_numpy(pad))
    if not fast:
        return module(*args, is_causal=causal).detach().numpy()
    with torch.inference_mode():
        return module(*args, is_causal=causal).numpy()


@pytest.mark.parametrize(
    "d_model,heads,dim_ff,norm_first,activation,final_norm",
    [(32, 4, 64, False, "relu", False), (64, 8, 128, True, "gelu", True),
     (48, 3, 100, False, "gelu", True), (64, 2, 64, True, "relu", False),
     (32, 1, 80, False, "gelu_tanh", False)])
def test_matches_torch(rng, d_model, heads, dim_ff, norm_first, activation, final_norm):
    torch = pytest.importorskip("torch")
    module = _torch_encoder(torch, 3, d_model, heads, dim_ff, norm_first, activation,
                            final_norm, seed=int(rng.integers(1 << 30)))
    encoder = padfree.Encoder.from_torch(module)
    assert (encoder.norm_first, encoder.activation) == (norm_first, activation)
    # A fully padded sequence: PyTorch returns zeros (fast path) or NaN (pre-norm path)
    # there, padfree zeros; only valid positions are compared, padded ones must be 0.
    lengths = np.array([19, 4, 0, 11, 1])
    x = batch_input(rng, 5, 19, d_model)
    keep = prefix_keep(lengths, 19)
    expected = _torch_run(torch, module, x, pad=~keep)
    assert_close_valid(encoder(x, lengths=lengths), expected, keep)
    holes = rng.random((5, 19)) < 0.7
    holes[:, 0] = True
    expected = _torch_run(torch, module, x, pad=~holes)
    assert_close_valid(encoder(x, src_key_padding_mask=~holes), expected, holes)


@pytest.mark.parametrize("kind", SRC_MASK_SHAPES)
@pytest.mark.parametrize("boolean", [True, False], ids=["bool", "additive"])
def test_src_mask_matches_torch(rng, kind, boolean):
    torch = pytest.importorskip("torch")
    batch, heads, length, d_model = 3, 4, 11, 32
    module = _torch_encoder(torch, 2, d_model, heads, 64, False, "relu", False, seed=7)
    encoder = padfree.Encoder.from_torch(module)
    shape = _src_mask_shape(kind, batch, heads, length)
    if boolean:
        mask = rng.random(shape) < 0.7
        # Every query, padded ones included, keeps key 0 (always real here): PyTorch turns a
        # fully masked row into NaN, which its next layer spreads through P @ V.
        mask[..., 0] = True
    else:
        mask = rng.standard_normal(shape).astype(np.float32)
        mask[(rng.random(shape) < 0.3)] = -np.inf
        mask[..., 0] = 0.0
    # PyTorch takes (L, L) or (B*H, L, L) only, and True = masked for booleans.
    full = _expand_src_mask(mask, batch, heads, length)
    torch_mask = full.reshape(batch * heads, length, length) if kind != "LL" else mask
    torch_mask = ~torch_mask if boolean else np.ascontiguousarray(torch_mask)
    keep = prefix_keep([11, 6, 9], length)
    x = batch_input(rng, batch, length, d_model)
    expected = _torch_run(torch, module, x, pad=~keep, mask=np.ascontiguousarray(torch_mask),
                          fast=boolean)
    assert_close_valid(encoder(x, attention_mask=keep, src_mask=mask), expected, keep)


def test_causal_matches_torch(rng):
    torch = pytest.importorskip("torch")
    module = _torch_encoder(torch, 2, 32, 4, 64, True, "gelu", False, seed=3)
    encoder = padfree.Encoder.from_torch(module)
    length = 10
    causal_mask = torch.nn.Transformer.generate_square_subsequent_mask(length).numpy()
    x = batch_input(rng, 2, length, 32)
    expected = _torch_run(torch, module, x, mask=causal_mask, causal=True)
    assert_close_valid(encoder(x, is_causal=True), expected, np.ones((2, length), bool))


def test_from_torch_layer_and_errors(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 40, activation="gelu",
                                             batch_first=True).eval()
    ours = padfree.EncoderLayer.from_torch(layer)
    stack = padfree.Encoder.from_torch(layer)
    assert type(ours) is padfree.EncoderLayer and stack.num_layers == 1
    x = batch_input(rng, 2, 6, 32)
    expected = _torch_run(torch, layer, x)
    assert_close_valid(ours(x), expected, np.ones((2, 6), bool))
    assert np.array_equal(stack(x), ours(x))
    with pytest.raises(TypeError, match="module must be a torch.nn.TransformerEncoderLayer"):
        padfree.EncoderLayer.from_torch(torch.nn.TransformerEncoder(layer, 2))
    with pytest.raises(TypeError, match="module must be a torch.nn.TransformerEncoder"):
        padfree.Encoder.from_torch(torch.nn.Linear(3, 3))
    silu = torch.nn.TransformerEncoderLayer(32, 4, 40, activation=torch.nn.functional.silu)
    with pytest.raises(ValueError, match="activation .* is not supported"):
        padfree.Encoder.from_torch(silu)


def test_from_torch_without_biases(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 40, batch_first=True, bias=False).eval()
    encoder = padfree.EncoderLayer.from_torch(layer)
    x = batch_input(rng, 2, 6, 32)
    assert_close_valid(encoder(x), _torch_run(torch, layer, x), np.ones((2, 6), bool))


@pytest.mark.slow
def test_six_layer_d512_error_against_torch(rng):
    """The bound quoted in the docs: 6 post-norm ReLU layers, d_model 512, 8 heads."""
    torch = pytest.importorskip("torch")
    module = _torch_encoder(torch, 6, 512, 8, 2048, False, "relu", False, seed=11)
    encoder = padfree.Encoder.from_torch(module)
    lengths = np.array([96, 17, 64, 33])
    x = batch_input(rng, 4, 96, 512)
    keep = prefix_keep(lengths, 96)
    expected = _torch_run(torch, module, x, pad=~keep)
    y = encoder(x, lengths=lengths)
    error = float(np.abs(y[keep] - expected[keep]).max())
    print(f"max abs error vs torch, 6 layers d_model 512: {error:.3g}")
    assert error < 1e-4
    assert np.all(y[~keep] == 0)

