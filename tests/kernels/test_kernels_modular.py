"""Wrapping add/sub and reduction: numba equals NumPy and Python-integer arithmetic."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedsecure.errors import ConfigurationError, InvalidInput
from fedsecure.kernels.modular import (
    add_into,
    add_into_reference,
    reduce_into,
    reduce_into_reference,
    sub_into,
    sub_into_reference,
)


@st.composite
def operand_pairs(draw):
    dtype = draw(st.sampled_from(["<u4", "<u8"]))
    n = draw(st.integers(0, 300))
    return draw(hnp.arrays(dtype, n)), draw(hnp.arrays(dtype, n))


@settings(max_examples=100, deadline=None)
@given(pair=operand_pairs())
def test_add_and_sub_equal_reference_and_integers(pair):
    acc, x = pair
    width = 2 ** (8 * acc.dtype.itemsize)
    for kernel, reference, op in [(add_into, add_into_reference, int.__add__),
                                  (sub_into, sub_into_reference, int.__sub__)]:
        ours, theirs = acc.copy(), acc.copy()
        kernel(ours, x)
        reference(theirs, x)
        assert np.array_equal(ours, theirs)
        assert ours.tolist() == [op(a, b) % width for a, b in zip(acc.tolist(), x.tolist())]


@settings(max_examples=100, deadline=None)
@given(pair=operand_pairs(), data=st.data())
def test_reduce_equals_reference_and_integers(pair, data):
    acc, _ = pair
    bits = data.draw(st.integers(1, 8 * acc.dtype.itemsize))
    ours, theirs = acc.copy(), acc.copy()
    reduce_into(ours, bits)
    reduce_into_reference(theirs, bits)
    assert np.array_equal(ours, theirs)
    assert ours.tolist() == [a % 2**bits for a in acc.tolist()]


@settings(max_examples=50, deadline=None)
@given(pair=operand_pairs(), data=st.data())
def test_wrapping_then_one_reduction_is_arithmetic_mod_2k(pair, data):
    """The masking identity: sums wrap mod 2^32/2^64, one final reduction gives mod 2^k."""
    acc, x = pair
    bits = data.draw(st.integers(1, 8 * acc.dtype.itemsize))
    result = acc.copy()
    add_into(result, x)
    add_into(result, x)
    sub_into(result, acc)
    reduce_into(result, bits)
    assert result.tolist() == [(2 * b) % 2**bits for b in x.tolist()]


def test_operates_in_place_on_multidimensional_arrays():
    acc = np.arange(6, dtype=np.uint32).reshape(2, 3)
    view = acc
    add_into(acc, np.full((2, 3), 2**32 - 1, dtype=np.uint32))
    assert view is acc and acc.tolist() == [[2**32 - 1, 0, 1], [2, 3, 4]]
    reduce_into(acc, 2)
    assert acc.tolist() == [[3, 0, 1], [2, 3, 0]]


@pytest.mark.parametrize("acc,x", [
    (np.zeros(3, np.uint32), np.zeros(3, np.uint64)),
    (np.zeros(3, np.uint32), np.zeros(4, np.uint32)),
    (np.zeros(3, np.int64), np.zeros(3, np.int64)),
    (np.zeros(6, np.uint32)[::2], np.zeros(3, np.uint32)),
    ([0, 0], np.zeros(2, np.uint32)),
])
def test_add_and_sub_refuse_bad_operands(acc, x):
    for kernel in (add_into, sub_into):
        with pytest.raises(InvalidInput):
            kernel(acc, x)


def test_refuses_read_only_accumulator_and_bad_modulus():
    frozen = np.zeros(3, np.uint64)
    frozen.flags.writeable = False
    with pytest.raises(InvalidInput):
        add_into(frozen, np.zeros(3, np.uint64))
    with pytest.raises(ConfigurationError):
        reduce_into(np.zeros(3, np.uint32), 33)
    with pytest.raises(ConfigurationError):
        reduce_into(np.zeros(3, np.uint64), 0)
