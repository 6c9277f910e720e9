"""Numba kernels for the masking and fixed-point arithmetic, each with its NumPy reference.

:mod:`.quantize` encodes float vectors into Z_{2^k} (clip, stochastic rounding, weight) and
decodes them; :mod:`.modular` adds, subtracts and reduces ring vectors in place;
:mod:`.packing` packs ring words to k bits each for the wire, unpacks them, and adds
a packed vector into a running sum.  Every kernel
``f`` has an ``f_reference`` in plain NumPy that the tests hold it equal to.
"""

from fedsecure.kernels.modular import (
    add_into,
    add_into_reference,
    reduce_into,
    reduce_into_reference,
    sub_into,
    sub_into_reference,
)
from fedsecure.kernels.packing import (
    add_packed_into,
    add_packed_into_reference,
    pack,
    pack_reference,
    packed_size,
    unpack,
    unpack_reference,
)
from fedsecure.kernels.quantize import (
    Quantizer,
    dequantize,
    dequantize_reference,
    quantize,
    quantize_reference,
)

__all__ = [
    "add_into", "add_into_reference", "sub_into", "sub_into_reference",
    "reduce_into", "reduce_into_reference",
    "quantize", "quantize_reference", "Quantizer", "dequantize", "dequantize_reference",
    "pack", "pack_reference", "unpack", "unpack_reference", "packed_size",
    "add_packed_into", "add_packed_into_reference",
]
