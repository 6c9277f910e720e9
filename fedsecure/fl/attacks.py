"""Poisoning attacks for evaluating robust aggregation (never used by an honest deployment).

Two kinds, at the layer where each needs its inputs:

* **Update attacks** replace a malicious client's delta after local training.  They are
  *omniscient* (the attacker sees the honest deltas of the round, the usual worst case in the
  papers) and get the malicious clients' own honest deltas ``own`` and the honest ones
  ``honest`` as ``(m, d)`` and ``(h, d)`` matrices:

  - ``sign-flip``: -x (the own delta, negated);
  - ``scaling``: ``scale`` * x (boosting, default 10);
  - ``gaussian``: N(0, ``sigma``^2) noise in place of the delta (default sigma 1);
  - ``alie``, "a little is enough" (Baruch et al., NeurIPS'19, §3): every malicious client sends
    mu - z * sigma, the honest coordinate-wise mean and standard deviation, with
    z = Phi^-1((n - s) / n), s = floor(n/2 + 1) - m (or ``z`` given);
  - ``ipm``, inner-product manipulation (Xie, Koyejo & Gupta, UAI'19, §3): every malicious
    client sends -``epsilon`` * mu (default epsilon 0.5).

* **Data attacks** poison a malicious client's training set before any round:

  - ``label-flip``: label y -> C - 1 - y (Fang et al. / Tolpegin et al. 2020);
  - ``backdoor``: a trigger (the last ``trigger_features`` features set to ``trigger_value``)
    stamped on a ``fraction`` (default 0.5) of the client's samples, relabelled
    ``target`` (default 0) — Bagdasaryan et al., AISTATS'20, without model replacement.
    Its success rate is measured by :func:`stamp_trigger` on the test set.

Attack randomness (the Gaussian noise, which samples to stamp) is not secret and comes from a
seeded NumPy generator, so runs are reproducible.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from fedsecure.config import require

UPDATE_ATTACKS = ("sign-flip", "scaling", "gaussian", "alie", "ipm")
DATA_ATTACKS = ("label-flip", "backdoor")
ATTACKS = UPDATE_ATTACKS + DATA_ATTACKS
ATTACK_OPTIONS = {
    "sign-flip": {}, "scaling": {"scale": 10.0}, "gaussian": {"sigma": 1.0},
    "alie": {"z": None}, "ipm": {"epsilon": 0.5}, "label-flip": {},
    "backdoor": {"target": 0, "fraction": 0.5, "trigger_features": 4, "trigger_value": 3.0},
}


def attack_options(name: str, options: dict | None) -> dict:
    """The attack's options: its defaults updated with ``options`` (unknown keys refused)."""
    require(name in ATTACKS, "attack", name, f"unknown; choose one of {list(ATTACKS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(ATTACK_OPTIONS[name]))
    require(not unknown, "attack_options", options,
            f"{unknown} not accepted by attack {name!r} (it takes {list(ATTACK_OPTIONS[name])})")
    return {**ATTACK_OPTIONS[name], **options}


def alie_z(n: int, m: int) -> float:
    """Baruch et al.'s z_max for n clients of which m are malicious."""
    s = math.floor(n / 2 + 1) - m
    return NormalDist().inv_cdf(min(max((n - s) / n, 1e-6), 1 - 1e-6))


def poison_updates(name: str, own: np.ndarray, honest: np.ndarray, *,
                   rng: np.random.Generator, **options) -> np.ndarray:
    """The malicious clients' deltas under update attack ``name``; see the module docstring."""
    options = attack_options(name, options)
    m = own.shape[0]
    require(name in UPDATE_ATTACKS, "attack", name, "is a data attack, not an update attack")
    if name == "sign-flip":
        return -own
    if name == "scaling":
        return options["scale"] * own
    if name == "gaussian":
        return rng.normal(0.0, options["sigma"], size=own.shape)
    require(honest.shape[0] >= 1, "attack", name, "needs at least one honest update per round")
    mean = honest.mean(axis=0)
    if name == "ipm":
        return np.tile(-options["epsilon"] * mean, (m, 1))
    z = alie_z(m + honest.shape[0], m) if options["z"] is None else options["z"]
    std = honest.std(axis=0, ddof=1) if honest.shape[0] > 1 else np.zeros_like(mean)
    return np.tile(mean - z * std, (m, 1))


def stamp_trigger(x, *, trigger_features: int, trigger_value: float):
    """A copy of the feature matrix ``x`` (NumPy or torch) with the backdoor trigger."""
    stamped = x.clone() if hasattr(x, "clone") else np.array(x, copy=True)
    stamped[:, -trigger_features:] = trigger_value
    return stamped


def poison_data(name: str, x, y, *, n_classes: int, rng: np.random.Generator, **options):
    """A malicious client's training set (x, y) under data attack ``name`` (new arrays)."""
    options = attack_options(name, options)
    require(name in DATA_ATTACKS, "attack", name, "is an update attack, not a data attack")
    if name == "label-flip":
        return x, (n_classes - 1) - y
    stamp = np.flatnonzero(rng.random(len(y)) < options["fraction"])
    x = x.clone() if hasattr(x, "clone") else np.array(x, copy=True)
    y = y.clone() if hasattr(y, "clone") else np.array(y, copy=True)
    x[stamp] = stamp_trigger(x[stamp], trigger_features=options["trigger_features"],
                             trigger_value=options["trigger_value"])
    y[stamp] = options["target"]
    return x, y
