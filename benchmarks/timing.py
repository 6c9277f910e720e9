"""A benchmark's timing statistics, for the ``extra_info`` derived from them.

``pytest benchmarks --benchmark-disable`` is the smoke run: each benchmarked function runs
once, untimed, and the case's asserts run, but pytest-benchmark measures and records nothing
(``benchmark.stats`` is ``None``).  A case that derives a rate or a ratio from its timings asks
:func:`timings` for them and, given ``None``, leaves that ``extra_info`` out -- together with
any baseline measured only to divide by -- instead of writing numbers that were never measured.
"""

from __future__ import annotations

from pytest_benchmark.stats import Stats


def timings(benchmark) -> Stats | None:
    """``benchmark``'s statistics in seconds (``.median``, ``.mean``, ...), or ``None`` when
    benchmarking is disabled."""
    return None if benchmark.disabled else benchmark.stats.stats
