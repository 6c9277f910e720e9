"""fedsecure's pytest-benchmark suites and the comparison report (``python -m benchmarks.report``).

A regular package on purpose: opacus 1.6 installs a top-level ``benchmarks`` package of its own
into site-packages, which would otherwise win over this directory as a namespace package.
"""
