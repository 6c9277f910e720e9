"""The small cases of every benchmark file run once, untimed (``pytest --benchmark-disable``): the
benchmarked code and its asserts (a right result, not only a fast one), no timings.

Left out for their start-up cost: ``bench_robust.py``'s rules (an 800 MB matrix), ``bench_compare.py``
(its session warm-up starts a Flower simulation; ``tests/bench/test_comparison.py`` runs its
cases' measurements) and ``bench_flower.py`` (a Ray start-up); docs/protocol-benchmarks.md,
"Smoke run", has their commands.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL_CASES = (
    "benchmarks/bench_prg.py",
    "benchmarks/bench_rng.py",
    "benchmarks/bench_kernels_packing.py",
    "benchmarks/bench_shamir.py::test_decode_vs_reconstruct[m101-t51-s200-wrong1]",
    "benchmarks/bench_shamir.py::test_batch_parser_vs_one_by_one",
    "benchmarks/bench_secaggplus_graph.py",
    "benchmarks/bench_dp.py::test_dp_round[central]",
    "benchmarks/bench_dp.py::test_noise_sampler",
    "benchmarks/bench_robust.py::test_protocol_round[grouped]",
    "benchmarks/bench_secagg.py::test_secagg_round[n10-d1e4-drop10]",
    "benchmarks/bench_secagg.py::test_client_masking_vs_raw_prg[99-100000]",
    "benchmarks/bench_secaggplus.py::test_round[secaggplus-n100-d1e5]",
    "benchmarks/bench_secaggplus.py::test_mask_step_vs_keystream[ring31-u32]",
    "benchmarks/bench_secaggplus.py::test_upload_vs_16_bit_plaintext[n100-defaults]",
    "benchmarks/bench_malicious.py::test_secagg_round_by_security_mode[n50-d1e4-malicious]",
    "benchmarks/bench_mpi.py::test_mpi_round_vs_in_process[plaintext-n7-d1e4]",
    "benchmarks/bench_ckks.py::test_ckks_step[decrypt-n10-d1e4]",
    "benchmarks/bench_ckks.py::test_ckks_round[n10-d1e4]",
)


def test_small_benchmark_cases_run_once_untimed():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--benchmark-disable", "-p", "no:cacheprovider", "-q",
         *SMALL_CASES], cwd=ROOT, capture_output=True, text=True, timeout=540, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
