"""Render a ``bench_compare.py`` run (its ``--benchmark-json``) as docs/benchmarks.md and plots.

:func:`render` is deterministic: the same JSON gives the same Markdown, so the committed report
can be checked against the committed run (``python -m benchmarks.report --render JSON``).
Everything in it -- tables, plots and the "what to pick when" sentences -- is computed from the
JSON; the sentences only choose their wording from how the measured numbers compare.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.comparison import BY_NAME, GRIDS, TECHNIQUES

PLOTS = ("cost_vs_n", "cost_vs_d", "bytes_vs_d", "accuracy_vs_epsilon", "time_to_accuracy")
PLACEMENT_LABEL = {"central": "central DP", "distributed": "distributed DP (in SecAgg)",
                   "local": "local DP"}
STYLE = {"baseline": "k-", "DP": "--", "SMPC": "-", "HE": "-.", "peer": ":"}


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


class Run:
    """The round cases and training runs of one JSON, indexed."""

    def __init__(self, data: dict):
        self.data = data
        self.meta = data.get("fedsecure", {})
        self.grid = GRIDS[self.meta.get("grid", "quick")]
        self.rounds: dict[tuple, dict[str, dict]] = defaultdict(dict)
        self.training: list[dict] = []
        for bench in data["benchmarks"]:
            info = dict({"wall_s": bench["stats"]["median"]}, **bench.get("extra_info", {}))
            if info.get("kind") == "round":
                self.rounds[(info["n"], info["d"], info["dropout"])][info["technique"]] = info
            elif info.get("kind") == "train":
                self.training.append(info)
        self.techniques = [t.name for t in TECHNIQUES
                           if any(t.name in cases for cases in self.rounds.values())]

    def value(self, technique, n, d, dropout, metric):
        return self.rounds.get((n, d, dropout), {}).get(technique, {}).get(metric)

    def ratio(self, technique, baseline, n, d, metric):
        """``technique``'s ``metric`` over ``baseline``'s at (n, d) and the plots' dropout."""
        return _ratio(self.value(technique, n, d, self.dropout, metric),
                      self.value(baseline, n, d, self.dropout, metric))

    @property
    def dropout(self) -> float:
        """The dropout rate the plots show: the grid's closest to 10 %."""
        return min(self.grid.dropouts, key=lambda p: abs(p - 0.1))

    def sweep(self, axis: str, dropout: float) -> list[tuple[int, int]]:
        g = self.grid
        points = [(n, g.d_fixed) for n in g.ns] if axis == "n" else [(g.n_fixed, d) for d in g.ds]
        return [p for p in points if (*p, dropout) in self.rounds]

    # ---- training
    def final_accuracy(self, technique: str, epsilon) -> float | None:
        runs = [r["final_accuracy"] for r in self.training
                if r["technique"] == technique and r["epsilon"] == epsilon]
        return statistics.mean(runs) if runs else None

    def cpu_to_target(self, technique: str, epsilon) -> float | None:
        """Median CPU seconds to the target accuracy over the seeds; None unless all reach it."""
        runs = [r["cpu_s_to_target"] for r in self.training
                if r["technique"] == technique and r["epsilon"] == epsilon]
        reached = [s for s in runs if s is not None]
        return statistics.median(reached) if runs and len(reached) == len(runs) else None


# --------------------------------------------------------------------------- tables


def _sweep_table(run: Run, axis: str, dropout: float, metric: str, scale: float) -> list[str]:
    points = run.sweep(axis, dropout)
    head = [f"{axis}={n if axis == 'n' else d:,}" for n, d in points]
    lines = ["| technique | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name in run.techniques:
        cells = [run.value(name, n, d, dropout, metric) for n, d in points]
        if any(c is not None for c in cells):
            lines.append(f"| {BY_NAME[name].label} | " + " | ".join(
                _num(None if c is None else c * scale) for c in cells) + " |")
    return lines + [""]


CASE_COLUMNS = (("rounds run", "repeats", 1), ("wall s", "wall_s", 1),
                ("client CPU ms", "client_cpu_s", 1e3), ("server CPU ms", "server_cpu_s", 1e3),
                ("up KB", "bytes_up", 1e-3),
                ("down KB", "bytes_down", 1e-3), ("round trips", "rounds", 1),
                ("peak RSS MB", "peak_rss_mb", 1), ("round MB", "round_mb", 1),
                ("RMS error", "error", 1), ("relative error", "relative_error", 1))


def _case_table(run: Run) -> list[str]:
    lines = ["| technique | n | d | dropout | " + " | ".join(c for c, _, _ in CASE_COLUMNS) + " |",
             "|---" * (4 + len(CASE_COLUMNS)) + "|"]
    for (n, d, p), cases in sorted(run.rounds.items()):
        for name in run.techniques:
            if name in cases:
                info = cases[name]
                cells = [_num(None if info.get(k) is None else info[k] * s)
                         for _, k, s in CASE_COLUMNS]
                lines.append(f"| {BY_NAME[name].label} | {n:,} | {d:,} | {p:g} | "
                             + " | ".join(cells) + " |")
    return lines + [""]


def _training_tables(run: Run) -> list[str]:
    g = run.grid
    techniques = list(dict.fromkeys(r["technique"] for r in run.training if r["epsilon"] is None))
    placements = [p for p in g.dp_placements
                  if any(r["technique"] == f"dp-{p}" for r in run.training)]
    lines = [f"Final test accuracy (%) after {g.train_rounds} rounds, {g.train_clients} clients"
             f" (mean over {len(g.seeds)} seed{'s' if len(g.seeds) > 1 else ''}), and CPU seconds"
             f" of the whole simulated federation to {100 * g.target_accuracy:g} % (median; —"
             " where a seed never reached it):", "",
             "| technique | epsilon | final accuracy % | CPU s to target | rounds to target |",
             "|---|---|---|---|---|"]
    rows = [(t, None) for t in techniques] + [(f"dp-{p}", e) for e in g.epsilons
                                              for p in placements]
    for technique, epsilon in rows:
        accuracy = run.final_accuracy(technique, epsilon)
        if accuracy is None:
            continue
        reached = [r["rounds_to_target"] for r in run.training
                   if r["technique"] == technique and r["epsilon"] == epsilon]
        label = _train_label(technique)
        lines.append(f"| {label} | {'—' if epsilon is None else f'{epsilon:g}'} |"
                     f" {100 * accuracy:.1f} | {_num(run.cpu_to_target(technique, epsilon))} |"
                     f" {', '.join('—' if r is None else str(r) for r in reached)} |")
    lines += ["", "Test accuracy (%) per round (seed 0):", ""]
    first = [r for r in run.training if r["seed"] == g.seeds[0]]
    if first:
        rounds = len(first[0]["accuracy"])
        lines += ["| technique | epsilon | " + " | ".join(str(i + 1) for i in range(rounds)) + " |",
                  "|---" * (rounds + 2) + "|"]
        for r in first:
            epsilon = "—" if r["epsilon"] is None else f"{r['epsilon']:g}"
            lines.append(f"| {_train_label(r['technique'])} | {epsilon} | "
                         + " | ".join(f"{100 * a:.1f}" for a in r["accuracy"]) + " |")
    return lines + [""]


def _train_label(technique: str) -> str:
    if technique.startswith("dp-"):
        return PLACEMENT_LABEL[technique.removeprefix("dp-")]
    return BY_NAME[technique].label.removesuffix(" (no protection)")


# --------------------------------------------------------------------------- what to pick when


def _ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _times(x: float | None) -> str:
    return "—" if x is None else f"{x:.2g}×" if x < 10 else f"{x:.0f}×"


def advice(run: Run) -> list[str]:
    """The "what to pick when" bullets, each computed from the run."""
    p, out = run.dropout, []
    v, r = run.value, run.ratio
    n_points = run.sweep("n", p)
    if n_points:
        n, d = n_points[-1]
        sa_cpu = r("secagg", "plaintext", n, d, "client_cpu_s")
        sa_up = r("secagg", "plaintext", n, d, "bytes_up")
        plus_c = r("secaggplus", "secagg", n, d, "client_cpu_s")
        plus_s = r("secaggplus", "secagg", n, d, "server_cpu_s")
        cheaper = [m for m, e in n_points
                   if (x := r("secagg", "secaggplus", m, e, "client_cpu_s")) and x > 1.3]
        head = "Many clients: SecAgg+." if cheaper else "SecAgg or SecAgg+."
        text = (f"**{head}** At n={n:,}, d={d:,}, {100 * p:g} % dropout a SecAgg"
                f" client spends {_times(sa_cpu)} the CPU of a plaintext client and uploads"
                f" {_times(sa_up)} its bytes; a SecAgg+ client spends {_times(plus_c)} the CPU of a"
                f" SecAgg client, the SecAgg+ server {_times(plus_s)} the SecAgg server's.")
        listed = ", ".join(f"{m:,}" for m in cheaper)
        text += (" In this grid a SecAgg+ client is clearly (>1.3×) cheaper than a SecAgg client at"
                 f" n = {listed} (of {', '.join(f'{m:,}' for m, _ in n_points)})." if cheaper
                 else " In this grid SecAgg+ is never clearly cheaper per client.")
        out.append(text)
        mal_c = r("secagg-malicious", "secagg", n, d, "client_cpu_s")
        mal_s = r("secagg-malicious", "secagg", n, d, "server_cpu_s")
        if mal_c is not None:
            text = (f"**Untrusted server: the malicious mode.** Against a malicious server SecAgg"
                    f" costs {_times(mal_c)} the client CPU and {_times(mal_s)} the server CPU of"
                    f" semi-honest SecAgg at n={n:,} ({v('secagg-malicious', n, d, p, 'rounds')}"
                    f" round trips instead of {v('secagg', n, d, p, 'rounds')}).")
            plus_mal = r("secaggplus-malicious", "secaggplus", n, d, "client_cpu_s")
            text += (f" For SecAgg+ the factor is {_times(plus_mal)}." if plus_mal is not None
                     else " SecAgg+ in malicious mode was not measured (see Skipped).")
            out.append(text)
    d_points = run.sweep("d", p)
    if d_points:
        n, d = d_points[-1]
        ck_up = r("ckks", "plaintext", n, d, "bytes_up")
        sa_up = r("secagg", "plaintext", n, d, "bytes_up")
        ck_cpu = r("ckks", "secagg", n, d, "client_cpu_s")
        if ck_up is not None and sa_up is not None:
            ck_err, sa_err = v("ckks", n, d, p, "error"), v("secagg", n, d, p, "error")
            head = "Bandwidth: masking over HE." if ck_up > sa_up else "Bandwidth: HE over masking."
            out.append(
                f"**{head}** At n={n:,}, d={d:,} a CKKS client uploads"
                f" {_times(ck_up)} the plaintext bytes (SecAgg {_times(sa_up)}), downloads"
                f" {_num(v('ckks', n, d, p, 'bytes_down') / 1e3)} KB and spends {_times(ck_cpu)}"
                f" SecAgg's client CPU: CKKS costs {'more' if ck_up > sa_up else 'less'} bandwidth"
                f" than masking here. Its RMS error, {_num(ck_err, 2)}, is"
                f" {'below' if ck_err < sa_err else 'above'} SecAgg's fixed-point"
                f" {_num(sa_err, 2)}.")
        dist = r("dp-distributed", "secagg", n, d, "client_cpu_s")
        central = r("dp-central", "plaintext", n, d, "server_cpu_s")
        local = r("dp-local", "plaintext", n, d, "client_cpu_s")
        if dist is not None:
            out.append(f"**DP's cost per round** (n={n:,}, d={d:,}): a central-DP server spends"
                       f" {_times(central)} the CPU of a plaintext server, a local-DP client"
                       f" {_times(local)} a plaintext client's, a distributed-DP client"
                       f" {_times(dist)} a SecAgg client's (clients sample the exact discrete"
                       " Gaussian).")
    out += _peer_advice(run)
    out += _accuracy_advice(run)
    return out


def _peer_advice(run: Run) -> list[str]:
    """fedsecure's SecAgg+ next to Flower's at the points where the peer ran."""
    points = sorted((n, d) for (n, d, q), cases in run.rounds.items()
                    if q == run.dropout and "flower-secaggplus" in cases and "secaggplus" in cases)
    if not points:
        return []
    cells = []
    for n, d in points:
        cpu, up = (run.ratio("secaggplus", "flower-secaggplus", n, d, m)
                   for m in ("client_cpu_s", "bytes_up"))
        cells.append(f"n={n:,}, d={d:,}: client CPU {_times(cpu)}, upload {_times(up)}")
    return ["**Next to Flower's SecAgg+** (`SecAggPlusWorkflow`, same n, d and dropout, its own"
            " Flower simulation): a fedsecure SecAgg+ client spends, of a Flower client's, "
            + "; ".join(cells) + ". Flower's client CPU is measured inside its ClientApp calls"
            " (`benchmarks/flower_peer.py`), so it includes Flower's message handling, which the"
            " in-process fedsecure number does not; both protocols inside the same Flower run are"
            " in [embedding.md](embedding.md)."]


SINGLE_RUN_CAVEAT = (", one run each: DP noise moves a single run by several points (paired runs"
                     " over many seeds, 100 clients:"
                     " [dp.md](dp.md#privacyutility-on-the-embedded-digits-dataset)).")


def _accuracy_advice(run: Run) -> list[str]:
    g, out = run.grid, []
    gaps = {e: _ratio_free_gap(run, "dp-distributed", "dp-central", e) for e in g.epsilons}
    local = {e: _ratio_free_gap(run, "dp-local", "dp-central", e) for e in g.epsilons}
    measured = [e for e in g.epsilons if gaps[e] is not None]
    if measured:
        worst = max(abs(gaps[e]) for e in measured)
        head = ("Privacy without trusting the server: distributed DP." if worst <= 0.05
                else "Distributed or central DP.")
        text = (f"**{head}** On digits"
                f" ({g.train_clients} clients) distributed DP's final accuracy is within"
                f" {100 * worst:.1f} pp of central DP's at every ε tried"
                f" ({', '.join(f'{e:g}' for e in measured)})"
                + (SINGLE_RUN_CAVEAT if len(g.seeds) == 1 else f", mean of {len(g.seeds)} seeds."))
        lows = [e for e in measured if local[e] is not None]
        if lows:
            text += (f" Local DP trails central by {100 * -max(local[e] for e in lows):.1f} to"
                     f" {100 * -min(local[e] for e in lows):.1f} pp: at this cohort size its"
                     " per-client noise costs more accuracy.")
        out.append(text)
    base = run.cpu_to_target("plaintext", None)
    if base is not None:
        def relative(technique: str, epsilon) -> str:
            t = run.cpu_to_target(technique, epsilon)
            return f"{_train_label(technique)} {'never' if t is None else _times(t / base)}"

        parts = [relative(t, None) for t in ("secagg", "secaggplus", "ckks")
                 if run.final_accuracy(t, None) is not None]
        top = max(g.epsilons)
        dp = [relative(f"dp-{p}", top) for p in g.dp_placements
              if run.final_accuracy(f"dp-{p}", top) is not None]
        out.append(f"**Time to {100 * g.target_accuracy:g} % accuracy** (CPU seconds of the whole"
                   " simulated federation: local training, aggregation, evaluation): plaintext"
                   f" {base:.1f} s; relative to it "
                   + ", ".join(parts) + (f"; at ε={top:g} " + ", ".join(dp) if dp else "") + ".")
    return out


def _ratio_free_gap(run: Run, a: str, b: str, epsilon) -> float | None:
    x, y = run.final_accuracy(a, epsilon), run.final_accuracy(b, epsilon)
    return None if x is None or y is None else x - y


# --------------------------------------------------------------------------- plots


def _figure(panels: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2 * panels, 4))
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, panels, squeeze=False)[0]


def _lines(axes, run: Run, axis: str, metric: str, scale: float, ylabel: str) -> None:
    points = run.sweep(axis, run.dropout)
    for name in run.techniques:
        xs, ys = [], []
        for n, d in points:
            y = run.value(name, n, d, run.dropout, metric)
            if y is not None and y > 0:
                xs.append(n if axis == "n" else d)
                ys.append(y * scale)
        if xs:
            tech = BY_NAME[name]
            axes.plot(xs, ys, STYLE[tech.family], marker="o", ms=4, label=tech.label)
    axes.set(xscale="log", yscale="log", xlabel="clients n" if axis == "n" else "values d",
             ylabel=ylabel)
    axes.grid(alpha=0.3, which="both")


def _sweep_title(run: Run, axis: str) -> str:
    g = run.grid
    fixed = f"d={g.d_fixed:,}" if axis == "n" else f"n={g.n_fixed:,}"
    return f"{fixed}, {100 * run.dropout:g} % dropout"


def plot_files(prefix: str) -> dict[str, str]:
    """Plot name -> PNG file name."""
    return {name: f"{prefix}{name.replace('_', '-')}.png" for name in PLOTS}


def plot_all(run: Run, folder: Path, prefix: str) -> dict[str, str]:
    """Write the PNGs into ``folder``; returns plot name -> file name."""
    files = plot_files(prefix)
    for axis, plot in (("n", "cost_vs_n"), ("d", "cost_vs_d")):
        figure, axes = _figure(2)
        _lines(axes[0], run, axis, "client_cpu_s", 1e3, "client CPU per round (ms)")
        _lines(axes[1], run, axis, "server_cpu_s", 1e3, "server CPU per round (ms)")
        axes[0].set_title(f"mean client, {_sweep_title(run, axis)}")
        axes[1].set_title(f"server, {_sweep_title(run, axis)}")
        axes[1].legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(folder / files[plot], dpi=90)
    figure, axes = _figure(2)
    _lines(axes[0], run, "d", "bytes_up", 1e-3, "upload per client (KB)")
    _lines(axes[1], run, "d", "bytes_down", 1e-3, "download per client (KB)")
    axes[0].set_title(f"bytes up, {_sweep_title(run, 'd')}")
    axes[1].set_title(f"bytes down, {_sweep_title(run, 'd')}")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / files["bytes_vs_d"], dpi=90)
    _plot_accuracy(run, folder / files["accuracy_vs_epsilon"])
    _plot_time(run, folder / files["time_to_accuracy"])
    return files


def _plot_accuracy(run: Run, path: Path) -> None:
    g = run.grid
    figure, (axes,) = _figure(1)
    for placement, style in zip(g.dp_placements, ("o-", "s--", "^:")):
        points = [(e, a) for e in g.epsilons
                  if (a := run.final_accuracy(f"dp-{placement}", e)) is not None]
        if points:
            axes.plot([e for e, _ in points], [100 * a for _, a in points], style,
                      label=PLACEMENT_LABEL[placement])
    base = run.final_accuracy("plaintext", None)
    if base is not None:
        axes.axhline(100 * base, color="grey", lw=1, label="no DP")
    axes.set(xscale="log", xlabel="epsilon (delta = 1e-5)", ylabel="final test accuracy (%)",
             title=f"digits, {g.train_clients} clients, {g.train_rounds} rounds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def _plot_time(run: Run, path: Path) -> None:
    g = run.grid
    figure, axes = _figure(2)
    top = max(g.epsilons)
    shown = [r for r in run.training if r["seed"] == g.seeds[0]
             and (r["epsilon"] is None or r["epsilon"] == top)]
    names, seconds = [], []
    for r in shown:
        label = _train_label(r["technique"]) + ("" if r["epsilon"] is None else f", ε={top:g}")
        elapsed = [sum(r["round_cpu_s"][:i + 1]) for i in range(len(r["round_cpu_s"]))]
        axes[0].plot(elapsed, [100 * a for a in r["accuracy"]], marker=".", label=label)
        names.append(label)
        t = run.cpu_to_target(r["technique"], r["epsilon"])
        seconds.append(t if t is not None else 0.0)
    axes[0].axhline(100 * g.target_accuracy, color="grey", lw=1)
    axes[0].set(xlabel="CPU seconds (all parties, one process)", ylabel="test accuracy (%)",
                title="accuracy per round (seed 0)")
    axes[0].grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    bars = axes[1].barh(range(len(names)), seconds)
    for bar, s in zip(bars, seconds):
        axes[1].text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                     f" {s:.1f} s" if s else " not reached", va="center", fontsize=7)
    axes[1].set_yticks(range(len(names)), names, fontsize=7)
    axes[1].set(xlabel="CPU seconds", title=f"time to {100 * g.target_accuracy:g} % accuracy")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


# --------------------------------------------------------------------------- the document


def render(data: dict, *, plots: dict[str, str], comparison: list[str] | None = None) -> str:
    """docs/benchmarks.md for the run ``data``; ``plots`` maps plot names to file names;
    ``comparison`` is the output of ``compare_runs`` against another run, if any."""
    run = Run(data)
    g, meta = run.grid, run.meta
    machine = data.get("machine_info", {})
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items() if v)
    load = meta.get("load_average_at_end")
    out = [
        "# Benchmarks: DP vs SMPC vs HE",
        "",
        "<!-- generated by benchmarks/report.py from the JSON named below; do not edit -->",
        "Generated from one pytest-benchmark run of `benchmarks/bench_compare.py` (grid"
        f" `{g.name}`); per-protocol measurements from earlier issues are in"
        " [protocol-benchmarks.md](protocol-benchmarks.md).",
        "",
        f"- command: `{meta.get('command', 'pytest benchmarks/bench_compare.py --benchmark-only')}`"
        + (f" ({meta['wall_s']:.0f} s wall for the whole run)" if "wall_s" in meta else ""),
        f"- run: {data.get('datetime', '?')}, results in `{meta.get('json', '?')}`",
        f"- machine: {machine.get('cpu', {}).get('brand_raw', '?')}, {meta.get('cpu_count', '?')}"
        f" cores, {machine.get('system', '?')} {machine.get('release', '')}"
        + (f"; load average at the end {load[0]:.1f} (shared machine: other jobs ran, read"
           " ratios measured in the same run rather than absolute seconds)" if load else ""),
        f"- python {meta.get('python', machine.get('python_version', '?'))}; {versions}",
        "",
        "Each round case runs every party in one process (`fedsecure.runtime.simulation`); CPU is"
        " each party's own protocol work (the least over the rounds a case runs: 3 to 5 for a"
        " round under a second, 2 under three seconds; noise only ever adds CPU), bytes are"
        " what a surviving client sends (up) and"
        " receives (down), round trips the messages it sends, error the RMS over coordinates of"
        " the result minus the exact sum of the survivors' vectors (each of L2 norm 0.9, weight"
        " 1; DP: clip 1, noise multiplier 1, one round). Dropped clients go silent before"
        " their upload. See `benchmarks/comparison.py`.",
        "",
        "## What to pick when",
        "",
        *[f"- {line}" for line in advice(run)],
        "",
    ]
    for axis, plot in (("n", "cost_vs_n"), ("d", "cost_vs_d")):
        out += [f"## Round cost as {axis} grows ({_sweep_title(run, axis)})", "",
                f"![cost vs {axis}]({plots[plot]})", ""]
        if axis == "d":
            out += [f"![bytes vs d]({plots['bytes_vs_d']})", ""]
        for p in g.dropouts:
            if not run.sweep(axis, p):
                continue
            fixed = f"d={g.d_fixed:,}" if axis == "n" else f"n={g.n_fixed:,}"
            tables = [("client CPU ms (mean client)", "client_cpu_s", 1e3),
                      ("server CPU ms", "server_cpu_s", 1e3)]
            if axis == "d":
                tables += [("KB up per client", "bytes_up", 1e-3),
                           ("KB down per client", "bytes_down", 1e-3)]
            for title, metric, scale in tables:
                out += [f"{title}, {fixed}, {100 * p:g} % dropout:", ""]
                out += _sweep_table(run, axis, p, metric, scale)
    out += ["## Training on the embedded digits dataset", "",
            f"`fedsecure.fl.loop.train`: logistic model, IID split over {g.train_clients} clients,"
            f" {g.train_rounds} rounds, 2 local epochs, lr 0.1; DP: L2 clip 0.3, delta 1e-5, ε"
            " the target over all rounds (distributed DP in SecAgg, noise sized for all clients"
            " surviving).", "",
            f"![accuracy vs epsilon]({plots['accuracy_vs_epsilon']})", "",
            f"![time to accuracy]({plots['time_to_accuracy']})", ""]
    out += _training_tables(run)
    out += ["## Every round case", ""] + _case_table(run)
    skipped = data.get("skipped", [])
    if skipped:
        out += ["## Skipped", ""]
        reasons: dict[str, list[str]] = defaultdict(list)
        for item in skipped:
            reasons[item["reason"]].append(item["name"])
        for reason, names in reasons.items():
            out.append(f"- {len(names)} case{'s' if len(names) > 1 else ''}"
                       f" (e.g. `{names[0]}`): {reason}")
        out.append("")
    if comparison is not None:
        out += ["## Two runs compared", "",
                f"`python -m benchmarks.compare_runs {meta.get('baseline', 'A.json')}"
                f" {meta.get('json', 'B.json')}`:", "", "```", *comparison, "```", ""]
    return "\n".join(out)
