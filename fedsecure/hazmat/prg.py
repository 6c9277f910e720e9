"""The mask PRG: AES-256-CTR keystream values added to (or subtracted from) a vector.

Theory of operation (Bonawitz et al., CCS'17, section 4): a client masks its input with one
pseudorandom vector per pairwise secret (added or subtracted, so that the two ends cancel in the
sum) plus a self-mask.  ``MaskPRG(seed, context)`` turns a full-entropy 32-byte ``seed`` (an
agreed X25519 secret or a self-mask seed) into that vector: the AES-256 key is
``derive_key(seed, purpose="mask-prg", context=context)`` -- ``context`` carries session, round
and pair so every mask is domain-separated -- and the stream is AES-256-CTR (zero IV) over
zeros.  A mask of the ring Z_{2^b} (``bits=b``; default the word width) reads value i as the
``w = draw_bytes(b)`` little-endian keystream bytes at offset i * w, mod 2^b: w = ceil(b / 8) = 5
or 6 for 33 <= b <= 48 (issue #17: a 34-bit ring draws 5 bytes, not 8), else the whole word
(4 bytes for b <= 32, 8 for b > 48), so word-width rings read exactly the uint32 / uint64 words
they always did.  Each value mod 2^b is exactly uniform, since 2^b divides 2^(8w).  Results are
reduced mod 2^b.  Narrower draws (b <= 24 in 1-3 bytes, 49..56 in 7) were measured no faster than
whole words -- extracting them costs what the keystream saved -- so they are not used.  Every value
is a whole number of bytes, so a PRG is a byte stream: successive calls continue where the
previous one stopped.

Speed: the client is PRG-bound, so adding masks never allocates per call: OpenSSL writes the
keystream with ``update_into`` into one scratch buffer per thread, reused by every PRG.
:func:`add_masks_into` adds many PRGs chunk by chunk -- every mask goes into one chunk of the
output (:func:`chunk_values`: as many values as one CHUNK_BYTES row of keystream holds) before
the next chunk -- so the output is read and written from memory once, not once per mask.
Within a chunk, the keystreams of GROUP masks of one sign are written side by side and added by
one numba pass (``out += r0 + r1 + r2 + r3``), so the output chunk crosses the cache once per
GROUP masks; the rows and the chunk fit a 1 MiB L2 cache (benchmarks/bench_secaggplus.py,
``test_mask_step_vs_keystream``).  Narrow values are added 8 at a time as LLVM vector code: one
64-byte load and one byte shuffle per row put 8 values of w bytes into 8 uint64 lanes (one
``vpermb`` with AVX-512 VBMI), the bytes above each value zero (issue #17: 2.5x faster than
the scalar shifts it replaced; a chunk holding a whole keystream row makes 1.6x fewer calls).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from fedsecure.errors import ConfigurationError
from fedsecure.hazmat._checks import require_key
from fedsecure.hazmat.agreement import derive_key

SEED_BYTES = 32
CHUNK_BYTES = 128 * 1024
GROUP = 4  # the narrow kernel below adds at most 4 rows
WORD_DTYPES = (np.dtype("<u4"), np.dtype("<u8"))
NARROW_BYTES = (5, 6)  # value widths drawn narrower than their word: rings of 33..48 bits
_SLACK = 64  # update_into's one spare block (15); the narrow kernel's 64-byte loads (24)
_ZEROS = memoryview(bytes(CHUNK_BYTES))
_SCRATCH = threading.local()


def _scratch() -> bytearray:
    """This thread's keystream buffer, GROUP chunks (allocating it per PRG would cost as much
    as a mask)."""
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None:
        buffer = _SCRATCH.buffer = bytearray(GROUP * CHUNK_BYTES + _SLACK)
    return buffer


class MaskPRG:
    """AES-256-CTR keystream for one (seed, context); see the module docstring."""

    def __init__(self, seed: bytes, context: bytes):
        key = derive_key(require_key("seed", seed, SEED_BYTES), purpose="mask-prg",
                         context=context)
        self._encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()

    def words(self, count: int, dtype: str, bits: int | None = None) -> np.ndarray:
        """The next ``count`` values of a ``bits``-bit ring (default: the word width) as a new
        array of ``dtype`` ("<u4" or "<u8"): ``draw_bytes(bits, dtype)`` keystream bytes each."""
        if not isinstance(count, int) or count < 0:
            raise ConfigurationError(f"count={count!r}: must be an integer >= 0")
        out = np.zeros(count, dtype=_word_dtype(dtype))
        self.add_into(out, bits=bits)
        return out

    def add_into(self, out: np.ndarray, sign: int = 1, bits: int | None = None) -> None:
        """``out = (out + sign * next len(out) values) mod 2^bits``, in place."""
        add_masks_into(out, [(self, sign)], bits=bits)


def draw_bytes(bits: int, dtype) -> int:
    """Keystream bytes drawn per value of a ring of ``bits`` bits in words of ``dtype``:
    ceil(bits / 8) = 5 or 6 for a ring of 33..48 bits, else the whole word (4 or 8 bytes):
    narrower draws measured slower there (see the module docstring)."""
    resolved = _word_dtype(dtype)
    width = (_ring_bits(bits, resolved) + 7) // 8
    return width if width in NARROW_BYTES else resolved.itemsize


def add_masks_into(out: np.ndarray, masks: Sequence[tuple[MaskPRG, int]],
                   prepare: Callable[[int, np.ndarray], None] | None = None,
                   bits: int | None = None) -> None:
    """``out = (out + sign * next len(out) values of prg) mod 2^bits`` for every ``(prg,
    sign)`` in ``masks``, in place (``bits`` defaults to the word width: 32 or 64) -- the same
    result as one ``add_into`` per mask, in one pass over ``out``: chunk by chunk,
    ``prepare(start, part)`` (if given) first writes ``part = out[start:start + len(part)]``,
    then every mask is added to that chunk while it is in cache.  Value i of a PRG is its
    next ``draw_bytes(bits)`` keystream bytes, little-endian, mod 2^bits."""
    for _, sign in masks:
        if sign not in (1, -1):
            raise ConfigurationError(f"sign={sign!r}: must be 1 or -1")
    if not isinstance(out, np.ndarray) or out.ndim != 1 or not out.flags.c_contiguous \
            or not out.flags.writeable:
        raise ConfigurationError("out: must be a writeable, C-contiguous 1-D numpy array")
    if sys.byteorder != "little":
        raise ConfigurationError("the mask kernels read little-endian words: a little-endian"
                                 " host is needed")
    dtype = _word_dtype(out.dtype)
    bits = 8 * dtype.itemsize if bits is None else _ring_bits(bits, dtype)
    width = draw_bytes(bits, dtype)
    if out.size == 0:
        return
    groups = []  # (keystream writers, subtract?) of at most GROUP masks of one sign
    for sign in (1, -1):
        writers = [prg._encryptor.update_into for prg, own in masks if own == sign]
        groups += [(writers[i:i + GROUP], sign == -1) for i in range(0, len(writers), GROUP)]
    scratch = _scratch()
    per_row = chunk_values(dtype, bits)
    mask = dtype.type((1 << bits) - 1)
    if width == dtype.itemsize:
        rows = np.frombuffer(scratch, dtype=dtype, count=GROUP * per_row).reshape(GROUP, per_row)
    else:
        stream = np.frombuffer(scratch, dtype=np.uint8)
    slots = [memoryview(scratch)[r * CHUNK_BYTES:] for r in range(GROUP)]  # row r and on
    for start in range(0, len(out), per_row):
        part = out[start:start + per_row]
        if prepare is not None:
            prepare(start, part)
        zeros = _ZEROS[:len(part) * width]
        if not groups:  # each kernel pass reduces mod 2^bits; without one, reduce here
            np.bitwise_and(part, mask, out=part)
        for writers, subtract in groups:
            for slot, write in zip(slots, writers):
                write(zeros, slot)  # the 15 spare bytes spill into the next row, written later
            if width == dtype.itemsize:
                _add_rows(part, rows, len(writers), mask, subtract)
            else:
                _add_narrow_rows(part, stream, len(writers), width, mask, subtract)


def chunk_values(dtype, bits: int | None = None) -> int:
    """Values per chunk of :func:`add_masks_into` (what ``prepare`` gets at most): a row of
    CHUNK_BYTES keystream bytes, in whole blocks of 8 values."""
    resolved = _word_dtype(dtype)
    width = draw_bytes(8 * resolved.itemsize if bits is None else bits, resolved)
    return CHUNK_BYTES // width // 8 * 8


@njit(cache=True)
def _add_rows(out, rows, count, mask, subtract):
    """out = (out -/+ (rows[0] + ... + rows[count - 1])) & mask (over len(out) words)."""
    if count == 4:  # one loop per count, so that each vectorises
        for i in range(out.size):
            _add_word(out, i, rows[0, i] + rows[1, i] + rows[2, i] + rows[3, i], mask, subtract)
    elif count == 3:
        for i in range(out.size):
            _add_word(out, i, rows[0, i] + rows[1, i] + rows[2, i], mask, subtract)
    elif count == 2:
        for i in range(out.size):
            _add_word(out, i, rows[0, i] + rows[1, i], mask, subtract)
    else:
        for i in range(out.size):
            _add_word(out, i, rows[0, i], mask, subtract)


@njit(cache=True, inline="always")
def _add_word(out, i, total, mask, subtract):
    if subtract:
        out[i] = (out[i] - out.dtype.type(total)) & mask
    else:
        out[i] = (out[i] + out.dtype.type(total)) & mask


@njit(cache=True)
def _add_narrow_rows(out, stream, count, width, mask, subtract):
    """Like :func:`_add_rows` for ``width`` = 5 or 6 bytes a value: value i of row r is the
    ``width`` bytes at byte ``r * CHUNK_BYTES + i * width`` of ``stream`` (the scratch bytes).
    Each block of 8 values is one vector operation (:func:`_narrow_block_adder`); the last
    chunk's tail, byte by byte."""
    blocks = out.size // 8
    for j in range(blocks):  # a loop-invariant branch: always predicted
        if width == 5:
            _add_5_wide(out, 8 * j, stream, 40 * j, count, mask, subtract)
        else:
            _add_6_wide(out, 8 * j, stream, 48 * j, count, mask, subtract)
    for i in range(8 * blocks, out.size):
        total = np.uint64(0)
        for r in range(count):
            at = r * CHUNK_BYTES + i * width
            for b in range(width):
                total += np.uint64(stream[at + b]) << np.uint64(8 * b)
        _add_word(out, i, total, mask, subtract)


def _narrow_block_adder(width: int):
    """A numba intrinsic ``f(out, i, stream, at, count, mask, subtract)``: ``out[i:i + 8] =
    (out[i:i + 8] +/- the sum over rows r < count <= GROUP of the 8 values of ``width`` bytes at
    byte ``at + r * CHUNK_BYTES`` of ``stream``) & mask``, as LLVM vector code: each row is one
    64-byte load and one byte shuffle that spreads its 8 values into 8 zero-extended uint64
    lanes (AVX-512 VBMI: one vpermb; other targets: whatever LLVM lowers the shuffle to).
    The IR switches on count to one straight-line sum per count (always predicted: only a
    sign's last group has fewer than GROUP rows; any count outside 2..GROUP sums one row).  A
    load reads 64 - 8 * width bytes past its block, so the caller leaves that much slack after
    a row.  Lanes are little-endian, as is every word here (add_masks_into refuses other
    hosts)."""
    bytes_ = ir.VectorType(ir.IntType(8), 64)
    lanes = ir.VectorType(ir.IntType(64), 8)
    spread = ir.Constant(ir.VectorType(ir.IntType(32), 64), [  # byte b of lane v; 64: a zero
        width * (j // 8) + j % 8 if j % 8 < width else 64 for j in range(64)])

    @intrinsic
    def add_block(typingctx, out, index, stream, offset, count, mask, subtract):
        if out != types.Array(types.uint64, 1, "C") \
                or stream != types.Array(types.uint8, 1, "C"):
            return None
        signature = types.void(out, types.intp, stream, types.intp, types.intp, types.uint64,
                               types.boolean)

        def codegen(context, builder, sig, args):
            target = context.make_array(sig.args[0])(context, builder, args[0]).data
            source = context.make_array(sig.args[2])(context, builder, args[2]).data

            def row_values(row):
                at = builder.add(args[3], ir.Constant(args[3].type, row * CHUNK_BYTES))
                loaded = builder.load(builder.bitcast(builder.gep(source, [at]),
                                                      bytes_.as_pointer()), align=1)
                return builder.bitcast(builder.shuffle_vector(
                    loaded, ir.Constant(bytes_, None), spread), lanes)

            # a switch on count, each case straight-line: sum rows 0..count-1 (count >= 1)
            merge = builder.append_basic_block("summed")
            cases, default = [], builder.append_basic_block("one_row")
            switch = builder.switch(args[4], default)
            for rows in range(2, GROUP + 1):
                block = builder.append_basic_block(f"rows_{rows}")
                switch.add_case(ir.Constant(args[4].type, rows), block)
                cases.append((rows, block))
            sums = []
            for rows, block in [(1, default)] + cases:
                builder.position_at_end(block)
                total = row_values(0)
                for row in range(1, rows):
                    total = builder.add(total, row_values(row))
                sums.append((total, builder.block))
                builder.branch(merge)
            builder.position_at_end(merge)
            total = builder.phi(lanes)
            for value, block in sums:
                total.add_incoming(value, block)
            words = builder.bitcast(builder.gep(target, [args[1]]), lanes.as_pointer())
            current = builder.load(words, align=1)
            result = builder.select(args[6], builder.sub(current, total),
                                    builder.add(current, total))
            broadcast = builder.insert_element(ir.Constant(lanes, None), args[5],
                                               ir.Constant(ir.IntType(32), 0))
            broadcast = builder.shuffle_vector(broadcast, ir.Constant(lanes, None),
                                               ir.Constant(ir.VectorType(ir.IntType(32), 8), [0] * 8))
            builder.store(builder.and_(result, broadcast), words, align=1)
            return context.get_dummy_value()

        return signature, codegen

    return add_block


_add_5_wide, _add_6_wide = _narrow_block_adder(5), _narrow_block_adder(6)


def expand(seed: bytes, context: bytes, count: int, dtype: str,
           bits: int | None = None) -> np.ndarray:
    """The first ``count`` values of ``MaskPRG(seed, context)`` (see ``MaskPRG.words``)."""
    return MaskPRG(seed, context).words(count, dtype, bits)


def _ring_bits(bits, dtype: np.dtype) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 8 * dtype.itemsize:
        raise ConfigurationError(f"bits={bits!r}: must be an integer in [1, {8 * dtype.itemsize}]"
                                 f" for {dtype.str} words")
    return bits


def _word_dtype(dtype) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in WORD_DTYPES:
        raise ConfigurationError(f"dtype={dtype!r}: must be '<u4' or '<u8' (little-endian)")
    return resolved
