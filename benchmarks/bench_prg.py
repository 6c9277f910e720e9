"""Mask PRG throughput: raw keystream of pyca and pycryptodome vs MaskPRG.add_into.

All three produce 4 * words bytes of AES-256-CTR keystream per call, CHUNK_BYTES at a time into
one reused buffer; add_into also adds it into a uint32 vector.  ``extra_info["bytes_per_s"]``
is keystream bytes over the median time (robust on a shared machine).
Run: pytest benchmarks/bench_prg.py --benchmark-only
"""

import numpy as np
import pytest
from Crypto.Cipher import AES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from benchmarks.timing import timings
from fedsecure.hazmat.prg import CHUNK_BYTES, MaskPRG

KEY = bytes(range(32))
SIZES = [10**6, 10**7]
ZEROS = memoryview(bytes(CHUNK_BYTES))


def record_rate(benchmark, nbytes: int) -> None:
    benchmark.extra_info["bytes"] = nbytes
    if (stats := timings(benchmark)) is not None:
        benchmark.extra_info["bytes_per_s"] = nbytes / stats.median


def keystream_loop(write_chunk, nbytes: int):
    def run():
        for start in range(0, nbytes, CHUNK_BYTES):
            write_chunk(ZEROS[:min(CHUNK_BYTES, nbytes - start)])
    return run


@pytest.mark.parametrize("words", SIZES)
def test_pyca_aes256_ctr_update_into(benchmark, words):
    benchmark.group = f"prg {words:.0e} words"
    encryptor = Cipher(algorithms.AES(KEY), modes.CTR(bytes(16))).encryptor()
    buffer = bytearray(CHUNK_BYTES + 15)
    benchmark(keystream_loop(lambda chunk: encryptor.update_into(chunk, buffer), 4 * words))
    record_rate(benchmark, 4 * words)


@pytest.mark.parametrize("words", SIZES)
def test_pycryptodome_aes256_ctr(benchmark, words):
    benchmark.group = f"prg {words:.0e} words"
    cipher = AES.new(KEY, AES.MODE_CTR, nonce=b"", initial_value=bytes(16))
    buffer = bytearray(CHUNK_BYTES)
    benchmark(keystream_loop(
        lambda chunk: cipher.encrypt(chunk, output=memoryview(buffer)[:len(chunk)]), 4 * words))
    record_rate(benchmark, 4 * words)


@pytest.mark.parametrize("words", SIZES)
def test_mask_prg_add_into(benchmark, words):
    benchmark.group = f"prg {words:.0e} words"
    prg = MaskPRG(KEY, b"bench")
    vector = np.zeros(words, dtype=np.uint32)
    benchmark(prg.add_into, vector)
    record_rate(benchmark, 4 * words)
