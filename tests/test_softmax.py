"""padfree.masked_softmax against an independent float64 NumPy reference.

Tolerances. The float32 kernels differ from the float64 reference by: the rounding of
x - max (and of x + mask) in float32, at most 2^-24 relative, which moves e^(x - max) by
at most |x - max| * 6e-8 relative, i.e. < 3e-8 absolute since t * e^-t <= 1/e; the vector
exp (below 1 ulp, tested at the bottom of this file); and the float32 row sum, whose
relative error grows with the row length (about (n/16 + 4) * 6e-8 for 16 lanes, n * 6e-8
for the scalar kernel). For rows of up to a few hundred entries rtol=1e-5 covers that with
a wide margin, and atol=1e-7 (one ulp of 1.0) covers the absolute part near zero.
float64 is computed in float64 (no float32 detour), so it must agree to about 1e-12.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import padfree
from padfree import _core

F32_TOL = dict(rtol=1e-5, atol=1e-7)
F64_TOL = dict(rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------
# Reference


def reference(scores, keep=None, bias=None, lengths=None, axis=-1):
    """Masked softmax in float64, written from the definition.

    A position is read if it lies before its row's length and its boolean mask entry is
    True. A row that reads nothing, or whose read values are all -inf, is zero. A row that
    reads a NaN or +inf is NaN at every read position. Unread positions are zero.
    """
    s = np.moveaxis(np.asarray(scores, dtype=np.float64), axis, -1)
    n = s.shape[-1]
    read = np.ones(s.shape, dtype=bool)
    if keep is not None:
        read &= np.moveaxis(np.broadcast_to(keep, scores.shape), axis, -1)
    if lengths is not None:
        lead = s.shape[:-1]
        lengths = np.asarray(lengths)
        lengths = lengths.reshape(lengths.shape + (1,) * (len(lead) - lengths.ndim))
        read &= np.arange(n) < np.broadcast_to(lengths, lead)[..., None]
    v = s
    if bias is not None:
        bias = np.broadcast_to(bias, scores.shape).astype(scores.dtype)
        # Round the sum in the scores' dtype, as the kernel does.
        v = (np.moveaxis(np.asarray(scores), axis, -1) + np.moveaxis(bias, axis, -1)).astype(
            np.float64
        )

    poisoned = (read & (np.isnan(v) | (v == np.inf))).any(-1, keepdims=True)
    kept = np.where(read, v, -np.inf)
    with np.errstate(invalid="ignore"):
        top = np.where(poisoned, 0.0, kept.max(-1, keepdims=True))
        empty = np.isneginf(top)
        e = np.where(read & ~poisoned, np.exp(kept - np.where(empty, 0.0, top)), 0.0)
        total = e.sum(-1, keepdims=True)
        p = np.where(empty | poisoned, 0.0, e / np.where(total == 0, 1.0, total))
    p = np.where(poisoned & read, np.nan, p)
    return np.moveaxis(p, -1, axis)


def check_close(actual, expected, dtype):
    tol = F32_TOL if dtype == np.float32 else F64_TOL
    np.testing.assert_allclose(actual, expected, **tol)


def prefix_keep(lengths, n):
    return np.arange(n) < np.asarray(lengths)[..., None]


# --------------------------------------------------------------------------------------
# Plain softmax, tails, dtypes


@pytest.mark.parametrize("n", range(1, 34))
def test_every_tail_length(isa, n, rng):
    scores = (3 * rng.standard_normal((5, n))).astype(np.float32)
    got = padfree.masked_softmax(scores)
    check_close(got, reference(scores), np.float32)
    assert got.dtype == np.float32 and got.shape == scores.shape


@pytest.mark.parametrize("n", range(1, 34))
def test_every_tail_length_with_lengths_and_mask(isa, n, rng):
    scores = (3 * rng.standard_normal((n + 1, n))).astype(np.float32)
    lengths = np.arange(n + 1)  # every prefix length, 0..n
    keep = rng.random((n + 1, n)) < 0.7
    got = padfree.masked_softmax(scores, keep, lengths=lengths)
    expected = reference(scores, keep=keep, lengths=lengths)
    check_close(got, expected, np.float32)
    assert (got[~(keep & prefix_keep(lengths, n))] == 0).all()


def test_float64_is_computed_in_float64(isa, rng):
    # Scores that differ by less than float32 resolution: a float32 detour would make
    # the probabilities equal.
    base = rng.standard_normal((7, 19))
    scores = base + 1e-10 * rng.standard_normal((7, 19))
    got = padfree.masked_softmax(scores, lengths=np.arange(7) + 13)
    assert got.dtype == np.float64
    check_close(got, reference(scores, lengths=np.arange(7) + 13), np.float64)
    float32_detour = reference(scores.astype(np.float32), lengths=np.arange(7) + 13)
    assert np.abs(got - float32_detour).max() > 1e-9


def test_float64_with_masks(rng, num_threads):
    scores = rng.standard_normal((3, 4, 37))
    keep = rng.random((3, 1, 37)) < 0.6
    bias = rng.standard_normal((4, 1))
    got = padfree.masked_softmax(scores, keep, lengths=[30, 37, 5], num_threads=num_threads)
    check_close(got, reference(scores, keep=keep, lengths=[30, 37, 5]), np.float64)
    got = padfree.masked_softmax(scores, bias, num_threads=num_threads)
    check_close(got, reference(scores, bias=bias), np.float64)


def test_rows_sum_to_one_and_padding_is_exact_zero(isa, rng):
    scores = rng.standard_normal((6, 8, 50)).astype(np.float32)
    lengths = rng.integers(1, 51, size=6)
    got = padfree.masked_softmax(scores, lengths=lengths)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=2e-6)
    for b, length in enumerate(lengths):
        assert (got[b, :, length:] == 0).all()
        assert (got[b, :, :length] > 0).all()


def test_large_scores_do_not_overflow(isa, rng):
    # Max subtraction: e^(x - max) stays in range even where e^x would not.
    scores = (rng.standard_normal((4, 40)) * 30 + np.array([[80.0], [-80.0], [300.0], [0]]))
    scores = scores.astype(np.float32)
    got = padfree.masked_softmax(scores)
    assert np.isfinite(got).all()
    check_close(got, reference(scores), np.float32)


# --------------------------------------------------------------------------------------
# Masks: boolean and additive, every broadcast shape


SCORES_SHAPE = (2, 3, 5, 21)


def broadcast_shapes(shape):
    """Every shape that broadcasts to `shape`: each dim kept or 1, leading dims dropped."""
    shapes = set()
    for ones in itertools.product([False, True], repeat=len(shape)):
        full = tuple(1 if one else size for one, size in zip(ones, shape))
        for drop in range(len(shape) + 1):
            shapes.add(full[drop:])
    return sorted(shapes)


@pytest.mark.parametrize("mask_shape", broadcast_shapes(SCORES_SHAPE), ids=str)
def test_boolean_mask_every_broadcast_shape(isa, mask_shape, rng):
    scores = rng.standard_normal(SCORES_SHAPE).astype(np.float32)
    keep = rng.random(mask_shape) < 0.6
    got = padfree.masked_softmax(scores, keep)
    check_close(got, reference(scores, keep=keep), np.float32)
    assert (got[~np.broadcast_to(keep, SCORES_SHAPE)] == 0).all()


@pytest.mark.parametrize("mask_shape", broadcast_shapes(SCORES_SHAPE), ids=str)
def test_additive_mask_every_broadcast_shape(isa, mask_shape, rng):
    scores = rng.standard_normal(SCORES_SHAPE).astype(np.float32)
    bias = rng.standard_normal(mask_shape)
    bias[rng.random(mask_shape) < 0.3] = -np.inf
    got = padfree.masked_softmax(scores, bias)
    check_close(got, reference(scores, bias=bias), np.float32)


@pytest.mark.parametrize("mask_dtype", [np.float16, np.float32, np.float64])
def test_additive_mask_dtypes_are_cast_to_scores_dtype(mask_dtype, rng):
    scores = rng.standard_normal((3, 17)).astype(np.float32)
    bias = rng.standard_normal((3, 17)).astype(mask_dtype)
    got = padfree.masked_softmax(scores, bias)
    check_close(got, reference(scores, bias=bias.astype(np.float32)), np.float32)


@pytest.mark.parametrize("lengths_shape", [(), (1,), (2,), (2, 1), (2, 3), (1, 3), (2, 3, 5)])
def test_lengths_broadcast_from_the_left(isa, lengths_shape, rng):
    scores = rng.standard_normal(SCORES_SHAPE).astype(np.float32)
    lengths = rng.integers(0, SCORES_SHAPE[-1] + 1, size=lengths_shape)
    got = padfree.masked_softmax(scores, lengths=lengths)
    check_close(got, reference(scores, lengths=lengths), np.float32)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint64, np.int64])
def test_lengths_integer_dtypes(dtype, rng):
    scores = rng.standard_normal((4, 9)).astype(np.float32)
    lengths = np.array([0, 3, 9, 1], dtype=dtype)
    got = padfree.masked_softmax(scores, lengths=lengths)
    check_close(got, reference(scores, lengths=lengths.astype(np.int64)), np.float32)


def test_seed_example_mask_and_lengths_agree_bit_for_bit(isa, num_threads, rng):
    # The classic source mask: token id 0 is padding, the mask is (input_seq != 0) as
    # (B, 1, 1, L), applied with masked_fill(-inf) before a softmax.
    batch, heads, length = 6, 4, 45
    seq_lengths = np.array([45, 1, 17, 32, 8, 44])
    input_seq = rng.integers(1, 1000, size=(batch, length))
    input_seq[np.arange(length) >= seq_lengths[:, None]] = 0
    src_mask = (input_seq != 0)[:, None, None, :]
    scores = rng.standard_normal((batch, heads, length, length)).astype(np.float32)

    filled = np.where(src_mask, scores, -np.inf).astype(np.float32)  # masked_fill(-inf)
    through_fill = padfree.masked_softmax(filled, num_threads=num_threads)
    through_mask = padfree.masked_softmax(scores, src_mask, num_threads=num_threads)
    additive = np.where(src_mask, 0.0, -np.inf).astype(np.float32)
    through_additive = padfree.masked_softmax(scores, additive, num_threads=num_threads)
    through_lengths = padfree.masked_softmax(
        scores, lengths=(input_seq != 0).sum(1), num_threads=num_threads
    )

    np.testing.assert_array_equal(through_mask, through_lengths)
    np.testing.assert_array_equal(through_mask, through_fill)
    np.testing.assert_array_equal(through_mask, through_additive)
    check_close(through_mask, reference(scores, keep=src_mask), np.float32)


def test_mask_with_holes_and_lengths_equal_the_combined_mask(isa, rng):
    scores = rng.standard_normal((5, 3, 40)).astype(np.float32)
    lengths = np.array([40, 0, 13, 29, 1])
    keep = rng.random((5, 1, 40)) < 0.5  # holes anywhere, also past the lengths
    combined = keep & prefix_keep(lengths, 40)[:, None, :]
    both = padfree.masked_softmax(scores, keep, lengths=lengths)
    np.testing.assert_array_equal(both, padfree.masked_softmax(scores, combined))
    check_close(both, reference(scores, keep=combined), np.float32)


def test_boolean_and_additive_mask_together_with_lengths(isa, rng):
    scores = rng.standard_normal((4, 33)).astype(np.float32)
    bias = rng.standard_normal((4, 33)).astype(np.float32)
    lengths = np.array([33, 20, 2, 31])
    # mask is either boolean or additive; the additive form of a boolean mask is
    # 0 / -inf, and combined with lengths it gives the same result.
    keep = rng.random((4, 33)) < 0.5
    bias_with_holes = np.where(keep, bias, -np.inf)
    got = padfree.masked_softmax(scores, bias_with_holes, lengths=lengths)
    check_close(got, reference(scores, keep=keep, bias=bias, lengths=lengths), np.float32)


def test_positions_past_lengths_are_not_read(isa):
    # NaN past the length would poison the row if it were read.
    scores = np.full((3, 30), np.nan, dtype=np.float32)
    scores[:, :10] = np.arange(10, dtype=np.float32)
    got = padfree.masked_softmax(scores, lengths=[10, 7, 0])
    check_close(got, reference(scores, lengths=[10, 7, 0]), np.float32)
    assert np.isfinite(got).all()


# --------------------------------------------------------------------------------------
# Fully masked rows, -inf, very negative scores, NaN


def test_fully_masked_rows_are_zero(isa, num_threads):
    scores = np.ones((4, 25), dtype=np.float32)
    keep = np.zeros((4, 25), dtype=bool)
    keep[2, 3] = True
    got = padfree.masked_softmax(scores, keep, num_threads=num_threads)
    expected = np.zeros((4, 25), np.float32)
    expected[2, 3] = 1
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(padfree.masked_softmax(scores, lengths=0), 0)
    bias = np.full((25,), -np.inf, np.float32)
    np.testing.assert_array_equal(padfree.masked_softmax(scores, bias), 0)


def test_all_minus_inf_rows_are_zero_and_partial_minus_inf_is_excluded(isa):
    scores = np.full((3, 19), -np.inf, dtype=np.float32)
    scores[1, 4] = 2.0
    scores[2, ::3] = 0.5
    got = padfree.masked_softmax(scores)
    assert (got[0] == 0).all()
    assert got[1, 4] == 1 and (np.delete(got[1], 4) == 0).all()
    np.testing.assert_allclose(got[2, ::3], 1 / 7, rtol=1e-6)
    assert (np.delete(got[2], np.arange(0, 19, 3)) == 0).all()


@pytest.mark.parametrize("offset", [-1e4, -1e30, -3e38])
def test_very_negative_scores(isa, offset, rng):
    scores = (rng.standard_normal((3, 23)) + offset).astype(np.float32)
    scores[1, 5] = -np.finfo(np.float32).max
    got = padfree.masked_softmax(scores, lengths=[23, 10, 1])
    check_close(got, reference(scores, lengths=[23, 10, 1]), np.float32)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)


def test_scores_far_below_the_max_underflow_to_zero(isa):
    scores = np.array([[0.0, -50.0, -90.0, -104.0, -200.0, -1e20, -np.inf]], np.float32)
    got = padfree.masked_softmax(scores)
    check_close(got, reference(scores), np.float32)
    assert got[0, 0] == 1.0 and (got[0, 4:] == 0).all()


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_nan_or_plus_inf_poisons_only_its_row(isa, poison, num_threads, rng):
    scores = rng.standard_normal((4, 6, 37)).astype(np.float32)
    scores[1, 2, 30] = poison
    scores[3, 0, 36] = poison  # past the length of batch entry 3: not read
    keep = np.ones(37, dtype=bool)
    keep[[3, 8]] = False
    lengths = np.array([37, 37, 37, 20])
    got = padfree.masked_softmax(scores, keep, lengths=lengths, num_threads=num_threads)
    assert np.isnan(got[1, 2, :30][keep[:30]]).all()
    assert (got[1, 2, ~keep] == 0).all()  # removed by the mask: still exactly zero
    rest = np.ones(got.shape[:2], dtype=bool)
    rest[1, 2] = False
    assert np.isfinite(got[rest]).all()
    expected = reference(scores, keep=keep, lengths=lengths)
    np.testing.assert_allclose(got, expected, **F32_TOL)  # NaN positions must match too


def test_nan_in_additive_mask_poisons_only_its_row(isa, rng):
    scores = rng.standard_normal((3, 18)).astype(np.float32)
    bias = np.zeros((3, 18), np.float32)
    bias[0, 17] = np.nan
    got = padfree.masked_softmax(scores, bias)
    assert np.isnan(got[0]).all() and np.isfinite(got[1:]).all()


# --------------------------------------------------------------------------------------
# Layouts: out=, in place, non-contiguous, other axes, zero-size


def test_out_and_in_place(isa, rng):
    scores = rng.standard_normal((3, 4, 29)).astype(np.float32)
    expected = reference(scores, lengths=[29, 3, 17])
    out = np.empty_like(scores)
    returned = padfree.masked_softmax(scores, lengths=[29, 3, 17], out=out)
    assert returned is out
    check_close(out, expected, np.float32)

    work = scores.copy()
    returned = padfree.masked_softmax(work, lengths=[29, 3, 17], out=work)
    assert returned is work
    np.testing.assert_array_equal(work, out)


def test_out_overlapping_scores_differently(isa, rng):
    # out is the transpose of scores: same memory, different rows. Must not corrupt.
    scores = rng.standard_normal((24, 24)).astype(np.float32)
    expected = reference(scores)
    padfree.masked_softmax(scores, out=scores.T)
    check_close(scores.T, expected, np.float32)


def test_out_aliasing_the_additive_mask(rng):
    scores = rng.standard_normal((5, 20)).astype(np.float32)
    bias = rng.standard_normal((5, 20)).astype(np.float32)
    expected = reference(scores, bias=bias)
    padfree.masked_softmax(scores, bias, out=bias)
    check_close(bias, expected, np.float32)


def test_non_contiguous_out(isa, rng):
    scores = rng.standard_normal((4, 31)).astype(np.float32)
    big = np.full((8, 62), 7.0, np.float32)
    out = big[::2, ::2]
    padfree.masked_softmax(scores, lengths=[31, 4, 9, 30], out=out)
    check_close(out, reference(scores, lengths=[31, 4, 9, 30]), np.float32)
    assert (big[1::2] == 7).all() and (big[:, 1::2] == 7).all()


@pytest.mark.parametrize(
    "make_view",
    [
        lambda a: a[:, ::2],
        lambda a: a[..., ::-1],
        lambda a: a[..., 1::3],
        lambda a: np.swapaxes(a, 0, 2),
        lambda a: np.asfortranarray(a),
        lambda a: a.astype(a.dtype.newbyteorder(">")),
    ],
    ids=["strided-rows", "reversed", "strided-axis", "swapped", "fortran", "big-endian"],
)
def test_non_contiguous_scores(isa, make_view, rng):
    base = rng.standard_normal((6, 8, 40)).astype(np.float32)
    scores = make_view(base)
    keep = rng.random(scores.shape[-1:]) < 0.7
    got = padfree.masked_softmax(scores, keep)
    check_close(got, reference(np.asarray(scores, np.float32), keep=keep), np.float32)


def test_non_contiguous_masks(isa, rng):
    scores = rng.standard_normal((4, 5, 26)).astype(np.float32)
    keep = (rng.random((4, 5, 52)) < 0.6)[:, :, ::2]
    bias = rng.standard_normal((26, 5, 4)).T  # reversed strides
    check_close(padfree.masked_softmax(scores, keep), reference(scores, keep=keep), np.float32)
    check_close(padfree.masked_softmax(scores, bias), reference(scores, bias=bias), np.float32)


@pytest.mark.parametrize("axis", [0, 1, 2, -2, -3])
def test_other_axes(isa, axis, rng):
    scores = rng.standard_normal((9, 17, 11)).astype(np.float32)
    shape = list(scores.shape)
    shape[axis] = 1
    lead = [s for d, s in enumerate(scores.shape) if d != axis % 3]
    lengths = rng.integers(0, scores.shape[axis] + 1, size=lead[:1])
    keep_shape = [1, 1, 1]
    keep_shape[axis] = scores.shape[axis]
    keep = rng.random(keep_shape) < 0.7
    got = padfree.masked_softmax(scores, keep, lengths=lengths, axis=axis)
    check_close(got, reference(scores, keep=keep, lengths=lengths, axis=axis), np.float32)


@pytest.mark.parametrize("shape", [(0,), (0, 5), (5, 0), (2, 0, 3)])
def test_zero_size(shape):
    scores = np.zeros(shape, np.float32)
    got = padfree.masked_softmax(scores, lengths=np.zeros(shape[:-1], np.int64))
    assert got.shape == shape and got.dtype == np.float32
    keep = np.ones(shape[-1:], dtype=bool)
    assert padfree.masked_softmax(scores, keep, axis=-1).shape == shape


def test_one_dimensional_and_python_sequences():
    got = padfree.masked_softmax([1.0, 2.0, 3.0], lengths=2)  # a list of floats is float64
    assert got.dtype == np.float64 and got[2] == 0
    scores = np.array([1.0, 2.0, 3.0], np.float32)
    got = padfree.masked_softmax(scores, [True, True, False])
    check_close(got, reference(scores, keep=np.array([True, True, False])), np.float32)
    got = padfree.masked_softmax(scores, lengths=2)
    check_close(got, reference(scores, lengths=2), np.float32)


# --------------------------------------------------------------------------------------
# Threads and ISAs


def test_thread_count_does_not_change_results(isa, rng):
    # Big enough to run in parallel (the driver stays serial below 16384 elements).
    scores = rng.standard_normal((4, 8, 70, 67)).astype(np.float32)
    lengths = rng.integers(0, 68, size=(4, 8))
    keep = rng.random((4, 1, 1, 67)) < 0.8
    one = padfree.masked_softmax(scores, keep, lengths=lengths, num_threads=1)
    two = padfree.masked_softmax(scores, keep, lengths=lengths, num_threads=2)
    default = padfree.masked_softmax(scores, keep, lengths=lengths)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, default)
    check_close(one, reference(scores, keep=keep, lengths=lengths), np.float32)


def test_a_sequence_does_not_depend_on_the_rest_of_the_batch(isa, rng):
    scores = rng.standard_normal((5, 4, 30, 30)).astype(np.float32)
    lengths = np.array([30, 7, 19, 1, 25])
    whole = padfree.masked_softmax(scores, lengths=lengths, num_threads=2)
    for b in range(5):
        alone = padfree.masked_softmax(scores[b : b + 1], lengths=lengths[b : b + 1])
        np.testing.assert_array_equal(whole[b : b + 1], alone)


def test_isas_agree(rng):
    scores = (4 * rng.standard_normal((6, 3, 53))).astype(np.float32)
    keep = rng.random((6, 1, 53)) < 0.7
    lengths = rng.integers(0, 54, size=6)
    previous = _core.get_isa()
    results = {}
    try:
        for name in padfree.cpu_info()["supported_isas"]:
            _core.set_isa(name)
            results[name] = padfree.masked_softmax(scores, keep, lengths=lengths)
    finally:
        _core.set_isa(previous)
    expected = reference(scores, keep=keep, lengths=lengths)
    for got in results.values():
        check_close(got, expected, np.float32)


# --------------------------------------------------------------------------------------
# Hypothesis: shapes, axes, masks, lengths


@st.composite
def softmax_cases(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim - 1, max_size=ndim - 1)))
    axis = draw(st.integers(-ndim, ndim - 1))
    shape = list(shape)
    shape.insert(axis % ndim, draw(st.integers(1, 70)))
    shape = tuple(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    mask_kind = draw(st.sampled_from(["none", "bool", "float"]))
    mask_shape = None
    if mask_kind != "none":
        ones = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
        drop = draw(st.integers(0, ndim))
        mask_shape = tuple(1 if one else s for one, s in zip(ones, shape))[drop:]
    with_lengths = draw(st.booleans())
    lead = [s for d, s in enumerate(shape) if d != axis % ndim]
    lengths_ndim = draw(st.integers(0, len(lead)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return shape, axis, seed, mask_kind, mask_shape, with_lengths, lead[:lengths_ndim], dtype


@given(softmax_cases())
def test_hypothesis_against_reference(case):
    shape, axis, seed, mask_kind, mask_shape, with_lengths, lengths_shape, dtype = case
    rng = np.random.default_rng(seed)
    scores = (3 * rng.standard_normal(shape)).astype(dtype)
    keep = bias = lengths = None
    if mask_kind == "bool":
        keep = rng.random(mask_shape) < 0.6
    elif mask_kind == "float":
        bias = rng.standard_normal(mask_shape)
        bias[rng.random(mask_shape) < 0.3] = -np.inf
    if with_lengths:
        lengths = rng.integers(0, shape[axis] + 1, size=lengths_shape)
    mask = keep if keep is not None else bias
    got = padfree.masked_softmax(scores, mask, lengths=lengths, axis=axis)
    expected = reference(scores, keep=keep, bias=bias, lengths=lengths, axis=axis)
    check_close(got, expected, dtype)


# --------------------------------------------------------------------------------------
# The vector exp


def exp_sweep():
    """Every representable float32 in a few dense windows, plus a fine grid over the
    whole range in which e^x is a normal float32."""
    rng = np.random.default_rng(12345)
    grid = np.linspace(-87.33, 88.72, 3_000_001, dtype=np.float32)
    windows = [np.float32(v) for v in (-87.3, -20.0, -0.35, 0.0, 0.34, 1.0, 44.0, 88.7)]
    windows += [np.float32(v) for v in rng.uniform(-87, 88.5, size=8)]
    dense = [
        (np.array([w], np.float32).view(np.int32) + np.arange(-50_000, 50_000, dtype=np.int32))
        .view(np.float32)
        for w in windows
    ]
    return np.concatenate([grid, *dense])


# Measured worst case of the AVX2 / AVX-512 exp: 0.94 ulp. The scalar path uses libm.
EXP_ULP_BOUND = 1.0


def test_vector_exp_error_bound(isa):
    x = exp_sweep()
    expected = np.exp(x.astype(np.float64))
    normal = (expected >= np.finfo(np.float32).tiny) & (expected <= np.finfo(np.float32).max)
    x, expected = x[normal], expected[normal]
    got = _core.exp_f32(x).astype(np.float64)
    ulp = np.spacing(expected.astype(np.float32)).astype(np.float64)
    worst = (np.abs(got - expected) / ulp).max()
    assert worst <= EXP_ULP_BOUND, f"{isa}: exp error {worst:.3f} ulp"


def test_vector_exp_special_values_and_ranges(isa):
    x = np.array([-np.inf, -1e30, -200.0, -104.0, 0.0, 88.8, 89.0, 1e30, np.inf, np.nan],
                 np.float32)
    got = _core.exp_f32(x)
    np.testing.assert_array_equal(got[:4], 0.0)
    assert got[4] == 1.0
    assert np.isposinf(got[5:9]).all()
    assert np.isnan(got[9])
    # Largest finite results stay finite (no overflow in 2^n for n = 128).
    top = np.float32(88.72283)
    assert np.isfinite(_core.exp_f32(np.array([top, 88.5, 88.4], np.float32))).all()
    # Subnormal results: within one subnormal step (2^-149) of the true value.
    low = np.linspace(-103.9, -87.4, 20_001, dtype=np.float32)
    err = np.abs(_core.exp_f32(low).astype(np.float64) - np.exp(low.astype(np.float64)))
    assert err.max() <= 2.0**-149


@pytest.mark.parametrize("n", [1, 7, 15, 16, 17, 31, 33])
def test_vector_exp_tails(isa, n, rng):
    x = rng.uniform(-20, 20, size=n).astype(np.float32)
    got = _core.exp_f32(x)
    np.testing.assert_allclose(got, np.exp(x.astype(np.float64)), rtol=2.4e-7)


# --------------------------------------------------------------------------------------
# Errors: each names the argument, what was expected and what arrived


def _scores():
    return np.zeros((2, 3, 4), np.float32)


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: padfree.masked_softmax(np.zeros(4, np.int32)), TypeError,
         r"scores must have dtype float32 or float64, got int32"),
        (lambda: padfree.masked_softmax(np.zeros(4, np.float16)), TypeError,
         r"scores must have dtype float32 or float64, got float16"),
        (lambda: padfree.masked_softmax(np.zeros(4, np.complex64)), TypeError,
         r"scores must have dtype float32 or float64, got complex64"),
        (lambda: padfree.masked_softmax(np.float32(1.0)), ValueError,
         r"scores must have at least 1 dimension, got a 0-d array"),
        (lambda: padfree.masked_softmax(_scores(), axis=3), ValueError,
         r"axis=3 is out of range for an array with 3 dimensions"),
        (lambda: padfree.masked_softmax(_scores(), axis=-4), ValueError,
         r"axis=-4 is out of range for an array with 3 dimensions"),
        (lambda: padfree.masked_softmax(_scores(), axis=1.0), TypeError,
         r"axis must be an int, got float"),
        (lambda: padfree.masked_softmax(_scores(), np.ones(4, np.int64)), TypeError,
         r"mask must be boolean .* or floating point .*, got dtype int64"),
        (lambda: padfree.masked_softmax(_scores(), np.ones((3, 1), bool)[:, :, None]
                                        .repeat(2, 0)), ValueError,
         r"mask has shape \(6, 1, 1\), which does not broadcast to the scores' shape "
         r"\(2, 3, 4\)"),
        (lambda: padfree.masked_softmax(_scores(), np.ones(5, np.float32)), ValueError,
         r"mask has shape \(5,\), which does not broadcast to the scores' shape \(2, 3, 4\)"),
        (lambda: padfree.masked_softmax(_scores(), lengths=[1.0, 2.0]), TypeError,
         r"lengths must be an integer array, got dtype float64"),
        (lambda: padfree.masked_softmax(_scores(), lengths=[True, False]), TypeError,
         r"lengths must be an integer array, got dtype bool"),
        (lambda: padfree.masked_softmax(_scores(), lengths=np.ones((2, 3, 1), int)), ValueError,
         r"lengths has 3 dimensions but scores has only 2 leading dimensions \(2, 3\)"),
        (lambda: padfree.masked_softmax(_scores(), lengths=[1, 2, 3]), ValueError,
         r"lengths has shape \(3,\), which does not match the leading dimensions \(2, 3\)"),
        (lambda: padfree.masked_softmax(_scores(), lengths=[1, -1]), ValueError,
         r"lengths must lie in \[0, 4\] \(the size of scores along axis 2\), got -1"),
        (lambda: padfree.masked_softmax(_scores(), lengths=[5, 1]), ValueError,
         r"lengths must lie in \[0, 4\] \(the size of scores along axis 2\), got 5"),
        (lambda: padfree.masked_softmax(_scores(), lengths=[2, 3, 1], axis=0),
         ValueError, r"lengths must lie in \[0, 2\] \(the size of scores along axis 0\), got 3"),
        (lambda: padfree.masked_softmax(_scores(), out=[0.0]), TypeError,
         r"out must be a numpy.ndarray, got list"),
        (lambda: padfree.masked_softmax(_scores(), out=np.zeros((2, 3, 4))), TypeError,
         r"out must have dtype float32 like scores, got float64"),
        (lambda: padfree.masked_softmax(_scores(), out=np.zeros((2, 4, 3), np.float32)),
         ValueError, r"out must have the shape of scores \(2, 3, 4\), got \(2, 4, 3\)"),
        (lambda: padfree.masked_softmax(_scores(), out=np.broadcast_to(np.float32(0), (2, 3, 4))),
         ValueError, r"out must be a writeable array, got a read-only one"),
        (lambda: padfree.masked_softmax(_scores(), num_threads=0), ValueError,
         r"num_threads must be a positive int or None, got 0"),
        (lambda: padfree.masked_softmax(_scores(), num_threads=2.0), TypeError,
         r"num_threads must be a positive int or None, got float"),
        (lambda: padfree.masked_softmax(_scores(), num_threads=True), TypeError,
         r"num_threads must be a positive int or None, got bool"),
    ],
    ids=lambda value: "" if callable(value) or isinstance(value, type) else None,
)
def test_errors_name_argument_expected_and_actual(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_errors_leave_out_untouched():
    out = np.full((2, 3, 4), 5.0, np.float32)
    with pytest.raises(ValueError):
        padfree.masked_softmax(_scores(), lengths=[9, 9], out=out)
    assert (out == 5).all()


def test_chunked_rows_with_odd_shapes(isa, rng):
    # Several scheduling chunks whose boundaries fall inside the leading dimensions, and
    # operands broadcast along different dimensions, walked together.
    scores = rng.standard_normal((3, 7, 5, 150, 3)).astype(np.float32)
    keep = rng.random((1, 7, 1, 150, 1)) < 0.7
    lengths = rng.integers(0, 4, size=(3, 7, 1, 150))
    for threads in (1, 2):
        got = padfree.masked_softmax(scores, keep, lengths=lengths, num_threads=threads)
        check_close(got, reference(scores, keep=keep, lengths=lengths), np.float32)
