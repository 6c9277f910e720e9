"""What a training run tells its user: one progress line per round, and whether the run failed.

No torch here: ``fedsecure train`` and Python callers share these.  A run *fails* when no round
of it changed the model -- every round aborted, e.g. because too few clients survived the
deadline or every client's local training diverged; ``fedsecure train`` then exits 1 with
:func:`run_failure`'s line.  Single aborted rounds are reported in their progress line and in
the metrics, and the run goes on from the model they left unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence


def _clients(label: str, numbers: Sequence[int]) -> str:
    return f"  {label} {','.join(map(str, numbers))}" if numbers else ""


def format_round(row: dict, rounds: int) -> str:
    """One progress line: round, accuracy, loss, clients, bytes, seconds per phase, epsilon
    spent under DP (record-level under DP-SGD; the L2 clip used, under adaptive clipping), and a
    robust rule's
    verdicts."""
    phases = " ".join(f"{name} {seconds:.2f}s" for name, seconds in row["phase_seconds"].items()
                      if seconds >= 0.005)
    status = f"  ABORTED: {row['aborted']}" if row["aborted"] else ""
    privacy = "" if row.get("epsilon") is None else f"  epsilon {row['epsilon']:.3f}"
    if row.get("record_epsilon") is not None:
        privacy += f"  record-epsilon {row['record_epsilon']:.3f}"
    if row.get("unclipped_count") is not None:
        privacy += f"  clip-norm {row['clip_norm']:.4g}"
    return (f"round {row['round']:>3}/{rounds}  acc {100 * row['accuracy']:6.2f}%"
            f"  loss {row['loss']:.4f}"
            f"  clients {len(row['survivors'])}/{len(row['sampled'])}"
            f"{_clients('dropped', row['dropped'])}{_clients('diverged', row['diverged'])}"
            f"  {row['bytes'] / 1e6:.3f} MB"
            f"  train {row['seconds_train']:.2f}s  aggregate {row['seconds_aggregate']:.2f}s"
            f"{_clipped(row['clipped_fraction'])}{privacy}"
            f"{'  [' + phases + ']' if phases else ''}{_robust_status(row)}{status}")


def _clipped(fraction: float | None) -> str:
    """The share of clipped coordinates ('' when not known: ``--mpi --dp`` clients do not
    report it)."""
    return "" if fraction is None else f"  clipped {100 * fraction:.2f}%"


def _robust_status(row: dict) -> str:
    """The robust rule's verdict of a round, for the progress line ('' without a rule)."""
    report = row.get("robust")
    if not report:
        return ""

    def inputs(lists) -> str:  # a group's clients joined by "+"
        return ",".join("+".join(str(c) for c in members) for members in lists) or "-"

    text = (f"  {report['rule']}: rejected {inputs(report['rejected'])}"
            f" down-weighted {inputs(report['downweighted'])}")
    if "backdoor_success" in row:
        text += f"  backdoor {100 * row['backdoor_success']:.1f}%"
    return text


def print_progress(row: dict, config) -> None:
    """An ``on_round`` callback for :func:`fedsecure.fl.loop.train`: print the round's line."""
    print(format_round(row, config.rounds), flush=True)


def run_failure(rows: Sequence[dict], config) -> str | None:
    """None if some round in ``rows`` (the rounds one invocation played) changed the model; else
    one line saying why none did and what to change."""
    if not rows or any(row["aborted"] is None for row in rows):
        return None
    last = rows[-1]
    span = f"round {last['round']}" if len(rows) == 1 else f"all {len(rows)} rounds"
    if any(row["diverged"] for row in rows):
        fix = (f"local training diverged (non-finite updates); lower --lr (now {config.lr:g})"
               " or --local-epochs")
    elif config.stragglers > 0:
        fix = (f"lower --stragglers (now {config.stragglers:g}) below the protocol's dropout"
               " tolerance")
    else:
        fix = "see the per-round lines and metrics.json, and give the round more clients"
    return (f"no round trained the model: {span} aborted (last: {last['aborted']}); {fix};"
            f" run directory {config.run_dir}")
