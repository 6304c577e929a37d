"""padfree.attention against a float64 NumPy reference, PyTorch SDPA, and its own contract
(padding never read, zeros where nothing is left, batch- and thread-independent results)."""

from __future__ import annotations

import numpy as np
import pytest
from mask_reference import structured_keep

import padfree

# Scores are float32 dot products of Dh <= 80 terms of unit-variance inputs (error about
# sqrt(Dh) * 2^-24 * |q||k|, below 1e-5 after the 1/sqrt(Dh) scale), the vectorised exp
# adds at most 3 ulp, and the output is a convex combination of unit-variance values
# accumulated in float32 over up to ~700 keys: 5e-5 absolute plus 1e-5 relative covers
# that with room. Observed errors are around 1e-6.
ATOL = 5e-5
RTOL = 1e-5


def reference(q, k, v, valid, *, allowed=None, bias=None, scale=None):
    """float64 attention written from the definition.

    valid: (B, L) bool, original positions that are real. allowed: (B, H, L, L) bool or
    None. bias: (B, H, L, L) float or None. Rows with no key left and padded queries are 0.
    """
    real = valid[:, None, :, None]
    q, k, v = (np.where(real, np.asarray(a, np.float64), 0.0) for a in (q, k, v))
    batch, heads, length, head_dim = q.shape
    scale = 1.0 / np.sqrt(head_dim) if scale is None else scale
    scores = np.einsum("bhid,bhjd->bhij", q, k) * scale
    keep = np.broadcast_to(valid[:, None, None, :], scores.shape).copy()
    if allowed is not None:
        keep &= allowed
    if bias is not None:
        scores = scores + bias
    scores = np.where(keep, scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(scores - row_max)
    total = weights.sum(axis=-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    out = np.einsum("bhij,bhjd->bhid", weights, v)
    return out * valid[:, None, :, None]




def make_qkv(rng, batch, heads, length, head_dim, dtype=np.float32):
    return (rng.standard_normal((3, batch, heads, length, head_dim))).astype(dtype)


def assert_close(actual, expected, what=""):
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=RTOL, err_msg=what)


def poison_padding(array, valid):
    """NaN at every padded position: the kernels must never read them."""
    array = array.copy()
    array.transpose(0, 2, 1, 3)[~valid] = np.nan
    return array


# --- lengths -------------------------------------------------------------------------


# head_dim tails: 8- and 16-float vectors whole, partial, and mixed (12, 33, 40).
@pytest.mark.parametrize("head_dim", [1, 7, 12, 16, 32, 33, 40, 64, 80])
def test_every_length_up_to_33(isa, num_threads, rng, head_dim):
    # One sequence of every length 0..33 in one batch (tile tails for 8/16/32 lanes).
    length = 33
    lengths = np.arange(length + 1)
    q, k, v = make_qkv(rng, len(lengths), 2, length, head_dim)
    valid = np.arange(length)[None, :] < lengths[:, None]
    q, k, v = (poison_padding(a, valid) for a in (q, k, v))

    out = padfree.attention(q, k, v, lengths=lengths, num_threads=num_threads)

    assert out.dtype == np.float32 and out.shape == q.shape
    assert (out.transpose(0, 2, 1, 3)[~valid] == 0).all()
    assert_close(out, reference(q, k, v, valid))


def test_no_padding_and_very_different_lengths(isa, num_threads, rng):
    lengths = np.array([1, 300, 2, 0, 77, 299])
    q, k, v = make_qkv(rng, len(lengths), 3, 300, 32)
    valid = np.arange(300)[None, :] < lengths[:, None]
    assert_close(padfree.attention(q, k, v, lengths=lengths, num_threads=num_threads),
                 reference(q, k, v, valid))
    full = np.ones_like(valid)
    assert_close(padfree.attention(q, k, v, num_threads=num_threads), reference(q, k, v, full))


def test_long_sequences_use_key_blocks(isa, num_threads, rng):
    # 700 keys span several online-softmax key blocks; causal and window cut blocks out.
    length = 700
    lengths = np.array([700, 513])
    q, k, v = make_qkv(rng, 2, 2, length, 64)
    q *= 3.0  # sharper softmax, so running-max rescaling matters
    valid = np.arange(length)[None, :] < lengths[:, None]
    bias = rng.standard_normal((length, length)).astype(np.float32)
    cases = [
        (dict(), None),
        (dict(is_causal=True), structured_keep(length, causal=True)),
        (dict(window=(300, 20)), structured_keep(length, window=(300, 20))),
    ]
    for kwargs, allowed in cases:
        out = padfree.attention(q, k, v, lengths=lengths, attn_mask=bias,
                                num_threads=num_threads, **kwargs)
        assert_close(out, reference(q, k, v, valid, allowed=allowed, bias=bias))


# --- key padding masks ---------------------------------------------------------------


def test_key_padding_mask_with_holes_and_left_padding(isa, num_threads, rng):
    batch, heads, length = 5, 2, 40
    padding = rng.random((batch, length)) < 0.4
    padding[1] = np.arange(length) < 17  # left padding
    padding[2] = True                    # all padding
    padding[3] = False                   # none
    q, k, v = make_qkv(rng, batch, heads, length, 32)
    valid = ~padding
    q, k, v = (poison_padding(a, valid) for a in (q, k, v))

    out = padfree.attention(q, k, v, key_padding_mask=padding, num_threads=num_threads)

    assert (out.transpose(0, 2, 1, 3)[padding] == 0).all()
    assert_close(out, reference(q, k, v, valid))


def test_key_padding_mask_and_lengths_combine(isa, rng):
    q, k, v = make_qkv(rng, 3, 2, 20, 16)
    padding = rng.random((3, 20)) < 0.3
    lengths = np.array([20, 11, 4])
    valid = ~padding & (np.arange(20)[None, :] < lengths[:, None])
    out = padfree.attention(q, k, v, lengths=lengths, key_padding_mask=padding)
    assert_close(out, reference(q, k, v, valid))


def test_prefix_key_padding_mask_equals_lengths(isa, rng):
    q, k, v = make_qkv(rng, 4, 2, 30, 32)
    lengths = np.array([30, 0, 12, 29])
    padding = np.arange(30)[None, :] >= lengths[:, None]
    np.testing.assert_array_equal(padfree.attention(q, k, v, lengths=lengths),
                                  padfree.attention(q, k, v, key_padding_mask=padding))


# --- attn_mask, causal, window -------------------------------------------------------


def attn_mask_forms(rng, batch, heads, length, boolean):
    """Each accepted attn_mask shape with the (B, H, L, L) array it stands for."""
    shapes = {
        "LL": (length, length),
        "BLL": (batch, length, length),
        "BHxLL": (batch * heads, length, length),
        "BHLL": (batch, heads, length, length),
        "1HLL": (1, heads, length, length),
    }
    forms = {}
    for name, shape in shapes.items():
        if boolean:
            mask = rng.random(shape) < 0.7
        else:
            mask = rng.standard_normal(shape).astype(np.float32)
            mask[rng.random(shape) < 0.2] = -np.inf
        if name == "LL":
            full = mask[None, None]
        elif name == "BLL":
            full = mask[:, None]
        elif name == "BHxLL":
            full = mask.reshape(batch, heads, length, length)
        else:
            full = mask
        forms[name] = (mask, np.broadcast_to(full, (batch, heads, length, length)))
    return forms


@pytest.mark.parametrize("boolean", [True, False], ids=["bool", "additive"])
def test_attn_mask_every_shape(isa, num_threads, rng, boolean):
    batch, heads, length = 3, 2, 37
    q, k, v = make_qkv(rng, batch, heads, length, 32)
    lengths = np.array([37, 20, 1])
    valid = np.arange(length)[None, :] < lengths[:, None]
    for name, (mask, full) in attn_mask_forms(rng, batch, heads, length, boolean).items():
        out = padfree.attention(q, k, v, lengths=lengths, attn_mask=mask,
                                num_threads=num_threads)
        expected = (reference(q, k, v, valid, allowed=full) if boolean
                    else reference(q, k, v, valid, bias=full))
        assert_close(out, expected, name)


def test_attn_mask_strided_and_float64(isa, rng):
    q, k, v = make_qkv(rng, 2, 2, 24, 16)
    valid = np.ones((2, 24), bool)
    wide = rng.standard_normal((24, 48))
    bias = wide[:, ::2]  # key axis not contiguous, float64: converted once, not expanded
    assert_close(padfree.attention(q, k, v, attn_mask=bias),
                 reference(q, k, v, valid, bias=np.broadcast_to(bias, (2, 2, 24, 24))))


@pytest.mark.parametrize(
    "causal, window",
    [(True, None), (False, (3, 2)), (False, (0, 0)), (False, (None, 5)), (False, (7, None)),
     (True, (4, None)), (True, (2, 9)), (False, (40, 40))],
)
def test_causal_and_window(isa, num_threads, rng, causal, window):
    batch, heads, length = 4, 2, 45
    q, k, v = make_qkv(rng, batch, heads, length, 32)
    lengths = np.array([45, 33, 16, 2])
    valid = np.arange(length)[None, :] < lengths[:, None]
    out = padfree.attention(q, k, v, lengths=lengths, is_causal=causal, window=window,
                            num_threads=num_threads)
    allowed = structured_keep(length, causal, window)
    assert_close(out, reference(q, k, v, valid, allowed=allowed))


@pytest.mark.parametrize("boolean", [True, False], ids=["bool", "additive"])
def test_every_mask_combined_with_holes(isa, num_threads, rng, boolean):
    # Original positions drive causal, window and attn_mask when the padding has holes.
    batch, heads, length = 4, 3, 50
    q, k, v = make_qkv(rng, batch, heads, length, 32)
    padding = rng.random((batch, length)) < 0.35
    padding[0, :10] = True
    lengths = np.array([50, 44, 50, 9])
    valid = ~padding & (np.arange(length)[None, :] < lengths[:, None])
    forms = attn_mask_forms(rng, batch, heads, length, boolean)
    mask, full = forms["BHLL"]
    structure = structured_keep(length, True, (12, None))

    out = padfree.attention(q, k, v, lengths=lengths, key_padding_mask=padding,
                            attn_mask=mask, is_causal=True, window=(12, None),
                            num_threads=num_threads)

    if boolean:
        expected = reference(q, k, v, valid, allowed=full & structure)
    else:
        expected = reference(q, k, v, valid, allowed=structure, bias=full)
    assert_close(out, expected)


def test_rows_with_no_key_left_are_zero(isa, rng):
    batch, heads, length = 2, 2, 20
    q, k, v = make_qkv(rng, batch, heads, length, 16)
    keep = rng.random((length, length)) < 0.5
    keep[3] = False  # query 3 sees nothing
    bias = np.where(keep, 0.0, -np.inf).astype(np.float32)
    padding = np.zeros((batch, length), bool)
    padding[:, 10:] = True
    padding[:, 5] = False
    for mask in (keep, bias):
        out = padfree.attention(q, k, v, attn_mask=mask, key_padding_mask=padding)
        assert np.isfinite(out).all()
        assert (out[:, :, 3] == 0).all()
    # a window whose only other keys are padding, with the query itself masked out
    padding = np.ones((batch, length), bool)
    padding[:, [0, 10]] = False
    not_self = ~np.eye(length, dtype=bool)
    out = padfree.attention(q, k, v, key_padding_mask=padding, window=(2, 2),
                            attn_mask=not_self)
    assert (out == 0).all()


# --- determinism, dtype --------------------------------------------------------------


def test_sequence_alone_equals_in_batch(isa, num_threads, rng):
    # Bit-identical: work is tiled per sequence with a fixed reduction order.
    lengths = np.array([70, 5, 128, 33, 0, 64])
    length = 130
    q, k, v = make_qkv(rng, len(lengths), 4, length, 32)
    bias = rng.standard_normal((len(lengths), length, length)).astype(np.float32)
    kwargs = dict(is_causal=True, window=(50, None))
    batch_out = padfree.attention(q, k, v, lengths=lengths, attn_mask=bias,
                                  num_threads=num_threads, **kwargs)
    for b, n in enumerate(lengths):
        alone = padfree.attention(q[b:b + 1, :, :n], k[b:b + 1, :, :n], v[b:b + 1, :, :n],
                                  attn_mask=bias[b, :n, :n], num_threads=1, **kwargs)
        np.testing.assert_array_equal(batch_out[b:b + 1, :, :n], alone)


def test_thread_count_does_not_change_bits(isa, rng):
    q, k, v = make_qkv(rng, 5, 3, 90, 64)
    padding = rng.random((5, 90)) < 0.3
    one = padfree.attention(q, k, v, key_padding_mask=padding, num_threads=1)
    two = padfree.attention(q, k, v, key_padding_mask=padding, num_threads=2)
    np.testing.assert_array_equal(one, two)


def test_padded_kernel_can_zero_the_padding(isa, rng):
    # padfree.attention hands the kernel a zeroed output; C++ callers may ask for the zeros.
    from padfree import _core

    q, k, v = make_qkv(rng, 3, 2, 10, 16)
    lengths = np.array([10, 4, 0], np.int64)
    expected = padfree.attention(q, k, v, lengths=lengths)
    out = np.full(q.shape, np.nan, np.float32)
    _core.attention_padded_f32(q, k, v, out, lengths, 0.25, None, None, False, -1, -1, 2,
                               zero_padding=True)
    np.testing.assert_array_equal(out, expected)


def test_strided_inputs_are_read_in_place(isa, rng):
    # (B, L, H, Dh) projections viewed as (B, H, L, Dh): row stride H * Dh, not Dh; and
    # q, k, v with different layouts (copied to one layout first).
    batch, heads, length, head_dim = 3, 4, 21, 16
    qkv = rng.standard_normal((batch, length, 3, heads, head_dim)).astype(np.float32)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    lengths = np.array([21, 9, 1])
    valid = np.arange(length)[None, :] < lengths[:, None]
    expected = reference(q, k, v, valid)
    assert_close(padfree.attention(q, k, v, lengths=lengths), expected)
    mixed = (q, np.ascontiguousarray(k), v[..., ::1])
    assert_close(padfree.attention(*mixed, lengths=lengths), expected)


def test_float64_in_float64_out(rng):
    q, k, v = make_qkv(rng, 2, 2, 12, 8, dtype=np.float64)
    out = padfree.attention(q, k, v, lengths=[12, 6], scale=0.3)
    assert out.dtype == np.float64
    valid = np.arange(12)[None, :] < np.array([12, 6])[:, None]
    assert_close(out, reference(q, k, v, valid, scale=0.3))


def test_empty_batches(rng):
    for shape in [(0, 2, 5, 8), (2, 2, 0, 8), (2, 0, 5, 8)]:
        q = np.ones(shape, np.float32)
        out = padfree.attention(q, q, q)
        assert out.shape == shape and (out == 0).all()
    q = np.ones((2, 2, 5, 8), np.float32)
    assert (padfree.attention(q, q, q, lengths=[0, 0]) == 0).all()


# --- PyTorch agreement ---------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["lengths", "holes", "bool_mask", "float_mask", "causal", "window_combined"]
)
def test_agrees_with_torch_sdpa(rng, case):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    batch, heads, length, head_dim = 4, 3, 40, 32
    q, k, v = make_qkv(rng, batch, heads, length, head_dim)
    lengths = np.array([40, 25, 3, 17])
    padding = np.arange(length)[None, :] >= lengths[:, None]
    kwargs = dict(lengths=lengths)
    if case == "holes":
        padding = rng.random((batch, length)) < 0.4
        kwargs = dict(key_padding_mask=padding)
    # SDPA takes one boolean mask (True = take part) built from the same pieces.
    keep = np.broadcast_to(~padding[:, None, None, :], (batch, heads, length, length)).copy()
    float_mask = None
    if case == "bool_mask":
        kwargs["attn_mask"] = rng.random((batch, length, length)) < 0.6
        keep &= kwargs["attn_mask"][:, None]
    if case == "float_mask":
        float_mask = rng.standard_normal((length, length)).astype(np.float32)
        kwargs["attn_mask"] = float_mask
    if case == "causal":
        kwargs["is_causal"] = True
        keep &= structured_keep(length, causal=True)
    if case == "window_combined":
        kwargs.update(is_causal=True, window=(5, None),
                      attn_mask=rng.random((batch * heads, length, length)) < 0.8)
        keep &= structured_keep(length, True, (5, None))
        keep &= kwargs["attn_mask"].reshape(batch, heads, length, length)

    sdpa_mask = torch.from_numpy(keep)
    if float_mask is not None:
        sdpa_mask = torch.where(sdpa_mask, torch.from_numpy(float_mask), float("-inf"))
    expected = functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), attn_mask=sdpa_mask
    ).numpy()
    # Fully masked rows (NaN in SDPA) and padded queries compare as zeros.
    empty = ~keep.any(axis=-1) | padding[:, None, :]
    expected = np.where(empty[..., None], 0.0, expected)

    assert_close(padfree.attention(q, k, v, **kwargs), expected)


# --- errors --------------------------------------------------------------------------


def _good():
    return np.zeros((2, 3, 5, 4), np.float32)


@pytest.mark.parametrize(
    "change, error, message",
    [
        (dict(q=np.zeros((2, 3, 5), np.float32)), ValueError, "q must have shape (B, H, L, Dh)"),
        (dict(k=np.zeros((2, 3, 6, 4), np.float32)), ValueError, "k must have the shape of q"),
        (dict(v=np.zeros((2, 3, 5, 4), np.float64)), TypeError, "v must have the dtype of q"),
        (dict(q=np.zeros((2, 3, 5, 4), np.int32)), TypeError, "q must have dtype"),
        (dict(lengths=[5]), ValueError, "lengths must have shape (B,) = (2,), got (1,)"),
        (dict(lengths=[5, 6]), ValueError, "lengths must lie in [0, 5]"),
        (dict(lengths=[1.0, 2.0]), TypeError, "lengths must be an integer array"),
        (dict(key_padding_mask=np.zeros((2, 5), np.int8)), TypeError, "True = padding"),
        (dict(key_padding_mask=np.zeros((2, 4), bool)), ValueError,
         "key_padding_mask must have shape (B, L) = (2, 5), got (2, 4)"),
        (dict(attn_mask=np.zeros((5, 5), np.int64)), TypeError, "attn_mask must be boolean"),
        (dict(attn_mask=np.zeros((5, 4), bool)), ValueError, "got (5, 4)"),
        (dict(attn_mask=np.zeros((4, 5, 5), bool)), ValueError, "(B*H, L, L)"),
        (dict(attn_mask=np.zeros((2, 2, 5, 5), bool)), ValueError, "H=3"),
        (dict(window=3), TypeError, "window must be a pair"),
        (dict(window=(1, -1)), ValueError, "window right bound must be a non-negative int"),
        (dict(window=(1.5, 2)), TypeError, "window left bound"),
        (dict(is_causal=1), TypeError, "is_causal must be a bool"),
        (dict(scale=float("nan")), ValueError, "scale must be finite"),
        (dict(scale="big"), TypeError, "scale must be a real number"),
        (dict(num_threads=0), ValueError, "num_threads"),
    ],
)
def test_errors_name_the_argument(change, error, message):
    args = dict(q=_good(), k=_good(), v=_good())
    for name in ("q", "k", "v"):
        if name in change:
            args[name] = change.pop(name)
    with pytest.raises(error) as caught:
        padfree.attention(args["q"], args["k"], args["v"], **change)
    assert message in str(caught.value)
