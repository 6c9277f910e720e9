"""Do two comparison runs agree?  Same ordering of the techniques, ratios within noise.

    python -m benchmarks.compare_runs a.json b.json     # exit 1 on disagreement

Reads two ``--benchmark-json`` files of ``bench_compare.py``.  At every round case (n, d,
dropout) both runs measured, for every metric and every pair of techniques measured in both,
it compares the ratio r = metric(a) / metric(b) of run A with that of run B:

* ratio changed: |log(r_A / r_B)| > log(tolerance) -- the two runs disagree on how much
  more one technique costs than the other;
* ordering flipped: r_A and r_B on opposite sides of 1, each by more than the tie margin
  (a pair within the margin in either run is a tie: noise may order it either way).

CPU seconds below ``--min-cpu`` (1 ms) are too small to time reliably and are left out.
Training runs (same epsilon and seed) are compared the same way on the CPU seconds to the
target accuracy, and on final accuracy by differences instead of ratios: without DP each
run's accuracy must match (same seed, same data; secure protocols differ only by their
rounding), with DP only the ordering of the placements must hold -- each DP run draws fresh
noise from the OS CSPRNG, so its accuracy is one sample (at small epsilon it moves by tens of
points from run to run), not a value to reproduce.  Wall times are not compared: on a shared
machine they measure the neighbours.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass

RATIO_METRICS = {  # metric -> (tolerance on the ratio of ratios, tie margin)
    "client_cpu_s": (2.0, 1.3),
    "server_cpu_s": (2.0, 1.3),
    "bytes_up": (1.05, 1.02),
    "bytes_down": (1.05, 1.02),
    "rounds": (1.0001, 1.0001),
    "error": (2.0, 1.5),
}
CPU_METRICS = ("client_cpu_s", "server_cpu_s")
ACCURACY_TOLERANCE = 0.05  # final accuracy, absolute (one DP run's noise)


@dataclass(frozen=True)
class Disagreement:
    where: str
    metric: str
    pair: tuple[str, str]
    a: float
    b: float
    kind: str  # "ratio changed" or "ordering flipped"

    def __str__(self) -> str:
        x, y = self.pair
        op = "/" if self.metric != "final_accuracy" else "-"
        return (f"{self.kind}: {self.where} {self.metric} {x} {op} {y}: "
                f"{self.a:.3g} in run A, {self.b:.3g} in run B")


def load(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def round_points(run: dict) -> dict[tuple, dict[str, dict]]:
    """(n, d, dropout) -> technique -> extra_info, for the round cases of a run."""
    points: dict[tuple, dict[str, dict]] = {}
    for bench in run["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("kind") == "round":
            points.setdefault((info["n"], info["d"], info["dropout"]), {})[info["technique"]] = info
    return points


def training_points(run: dict) -> dict[tuple, dict[str, dict]]:
    """(epsilon, seed) -> technique -> extra_info of a training run (epsilon None: no DP)."""
    points: dict[tuple, dict[str, dict]] = {}
    for bench in run["benchmarks"]:
        info = bench.get("extra_info", {})
        if info.get("kind") == "train":
            points.setdefault((info["epsilon"], info["seed"]), {})[info["technique"]] = info
    return points


def _ratio_checks(where, metric, values_a, values_b, tolerance, tie, min_value):
    out, checked = [], 0
    names = sorted(set(values_a) & set(values_b))
    for x, y in itertools.combinations(names, 2):
        pair = (values_a[x], values_a[y], values_b[x], values_b[y])
        if min(pair) <= 0 or min(pair) < min_value:
            continue  # too small to time, or nothing to divide by (e.g. no download)
        checked += 1
        ra, rb = pair[0] / pair[1], pair[2] / pair[3]
        if abs(math.log(ra / rb)) > math.log(tolerance):
            out.append(Disagreement(where, metric, (x, y), ra, rb, "ratio changed"))
        elif ra > tie and rb < 1 / tie or ra < 1 / tie and rb > tie:
            out.append(Disagreement(where, metric, (x, y), ra, rb, "ordering flipped"))
    return out, checked


def _difference_checks(where, values_a, values_b, tolerance, *, levels: bool):
    out = []
    names = sorted(set(values_a) & set(values_b))
    for x in names if levels else ():
        if abs(values_a[x] - values_b[x]) > tolerance:
            out.append(Disagreement(where, "final_accuracy", (x, "itself"), values_a[x],
                                    values_b[x], "accuracy changed"))
    for x, y in itertools.combinations(names, 2):
        da, db = values_a[x] - values_a[y], values_b[x] - values_b[y]
        if da > tolerance and db < -tolerance or da < -tolerance and db > tolerance:
            out.append(Disagreement(where, "final_accuracy", (x, y), da, db, "ordering flipped"))
    return out


def compare(run_a: dict, run_b: dict, *, min_cpu: float = 1e-3,
            accuracy_tolerance: float = ACCURACY_TOLERANCE) -> tuple[list[Disagreement], int]:
    """The disagreements between two runs, and how many comparisons were made."""
    found: list[Disagreement] = []
    checked = 0
    points_a, points_b = round_points(run_a), round_points(run_b)
    for point in sorted(set(points_a) & set(points_b)):
        where = "n={} d={} dropout={}".format(*point)
        for metric, (tolerance, tie) in RATIO_METRICS.items():
            values = [{t: info[metric] for t, info in points[point].items() if metric in info}
                      for points in (points_a, points_b)]
            floor = min_cpu if metric in CPU_METRICS else 0.0
            disagreements, count = _ratio_checks(where, metric, *values, tolerance, tie, floor)
            found += disagreements
            checked += count
    train_a, train_b = training_points(run_a), training_points(run_b)
    for point in sorted(set(train_a) & set(train_b), key=str):
        where = "training epsilon={} seed={}".format(*point)
        accuracy = [{t: info["final_accuracy"] for t, info in runs[point].items()}
                    for runs in (train_a, train_b)]
        checked += len(set(accuracy[0]) & set(accuracy[1]))
        found += _difference_checks(where, *accuracy, accuracy_tolerance,
                                    levels=point[0] is None)
        cpu = [{t: info["cpu_s_to_target"] for t, info in runs[point].items()
                if info.get("cpu_s_to_target") is not None} for runs in (train_a, train_b)]
        disagreements, count = _ratio_checks(where, "cpu_s_to_target", *cpu,
                                             *RATIO_METRICS["client_cpu_s"], min_cpu)
        found += disagreements
        checked += count
    return found, checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--min-cpu", type=float, default=1e-3,
                        help="CPU seconds below which a value is not compared (default 1e-3)")
    parser.add_argument("--accuracy-tolerance", type=float, default=ACCURACY_TOLERANCE)
    args = parser.parse_args(argv)
    found, checked = compare(load(args.run_a), load(args.run_b), min_cpu=args.min_cpu,
                             accuracy_tolerance=args.accuracy_tolerance)
    for disagreement in found:
        print(disagreement)
    if checked == 0:
        print("no case measured in both runs")
        return 2
    print(f"{len(found)} disagreements in {checked} comparisons"
          f" ({'the runs agree' if not found else 'the runs disagree'})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
