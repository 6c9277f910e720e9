"""The configuration of a federated training run, validated before any work starts.

A :class:`TrainConfig` is built from defaults, then a TOML file (flat keys named like the fields,
plus an optional ``[protocol_options]`` table passed to the aggregator), then command-line flags.
Every check raises :class:`~fedsecure.errors.ConfigurationError` with one line naming the option
and the value seen.  Checks that need the data (more clients than samples) or the aggregator
(protocol options, ring size) run in the training pre-flight, still before the first round.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the train extra installs tomli
    import tomli as tomllib

import fedsecure.protocols  # noqa: F401  (registers the built-in protocols)
from fedsecure.config import require
from fedsecure.errors import ConfigurationError
from fedsecure.fl import robust_round
from fedsecure.fl.data import PARTITIONS, check_dataset_spec
from fedsecure.fl.model import MODELS
from fedsecure.fl.server import sampled_per_round
from fedsecure.protocols.base import available_protocols

DP_PLACEMENTS = ("local", "central", "distributed")  # fedsecure.dp.PLACEMENTS
DISTRIBUTED_DP_PROTOCOLS = ("secagg", "secaggplus")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on.  See docs/training.md for each option."""

    # data
    dataset: str = "digits"
    label_column: str | int | None = None
    test_fraction: float = 0.2
    clients: int = 10
    partition: str = "dirichlet"
    alpha: float = 0.5
    # federated rounds
    rounds: int = 12
    fraction: float = 1.0
    protocol: str = "secagg"
    protocol_options: dict[str, Any] = field(default_factory=dict)
    clip: float = 2.0
    allow_small_cohort: bool = False  # let secure protocols run rounds that reveal inputs
    deadline_s: float | None = None
    stragglers: float = 0.0  # fraction of each round's clients whose messages miss the deadline
    # model and local training
    model: str = "mlp"
    hidden: int = 64
    local_epochs: int = 2
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    mu: float = 0.0
    # Byzantine robustness and attack simulation (fl/robust_round.py, docs/robust.md)
    robust: str | None = None  # a rule of fedsecure.robust, e.g. "trimmed-mean"
    robust_f: int | None = None  # Byzantine inputs (clients or groups) to withstand
    robust_groups: int | None = None  # run the rule across this many secure groups
    robust_max_norm: float | None = None  # per-client L2 bound checked on each group's sum
    robust_options: dict[str, Any] = field(default_factory=dict)
    attack: str | None = None  # an attack of fl/attacks.py played by the malicious clients
    attack_options: dict[str, Any] = field(default_factory=dict)
    malicious: float = 0.0  # fraction of the clients that are malicious
    # differential privacy (docs/dp.md): placement, target (epsilon, delta) over all rounds,
    # L2 clip of each delta; dp_survivors: the fraction of a round's clients the distributed
    # noise is sized for (unset: the protocol's threshold, a strict majority); adaptive_clip:
    # the target quantile of the update norms that clip_norm (then the initial clip) tracks,
    # with learning rate adaptive_clip_lr and a share adaptive_clip_share of the noise budget
    # spent on the private count (Andrew et al. 2021)
    dp: str | None = None
    epsilon: float | None = None
    delta: float = 1e-5
    clip_norm: float = 1.0
    dp_survivors: float | None = None
    adaptive_clip: float | None = None
    adaptive_clip_lr: float = 0.2
    adaptive_clip_share: float = 0.1
    # sample-level DP-SGD in local training (fedsecure/dp/dpsgd.py, extra: dp-sgd): noise
    # multiplier and per-example L2 clip; the record-level epsilon is at `delta`
    dp_sgd: float | None = None
    dp_sgd_clip: float = 1.0
    # run
    seed: int = 0
    device: str = "auto"
    threads: int = 1  # torch CPU threads for the process; 0 keeps torch's own setting
    run_dir: str | None = None
    personalize: bool = False
    personalize_epochs: int = 2

    def __post_init__(self):
        check_dataset_spec(self.dataset)
        require(self.label_column is None or isinstance(self.label_column, (str, int)),
                "label_column", self.label_column, "must be a column name or index")
        require(_is_number(self.test_fraction) and 0 < self.test_fraction < 1,
                "test_fraction", self.test_fraction, "must be a number in (0, 1)")
        require(_is_int(self.clients) and self.clients >= 2, "clients", self.clients,
                "must be an integer >= 2")
        require(self.partition in PARTITIONS, "partition", self.partition,
                f"must be one of {list(PARTITIONS)}")
        require(_is_number(self.alpha) and self.alpha > 0, "alpha", self.alpha,
                "must be a number > 0 (Dirichlet concentration)")
        require(_is_int(self.rounds) and self.rounds >= 1, "rounds", self.rounds,
                "must be an integer >= 1")
        require(_is_number(self.fraction) and 0 < self.fraction <= 1, "fraction",
                self.fraction, "must be a number in (0, 1]")
        m = sampled_per_round(self.clients, self.fraction)
        require(m >= 2, "fraction", self.fraction,
                f"samples {m} of {self.clients} clients per round; aggregation needs >= 2")
        protocols = available_protocols()
        require(self.protocol in protocols, "protocol", self.protocol,
                f"unknown; choose one of {protocols}")
        require(isinstance(self.protocol_options, dict)
                and all(isinstance(k, str) for k in self.protocol_options),
                "protocol_options", self.protocol_options, "must be a table of named options")
        require(_is_number(self.clip) and self.clip > 0, "clip", self.clip,
                "must be a number > 0 (per-coordinate bound on each delta)")
        require(isinstance(self.allow_small_cohort, bool), "allow_small_cohort",
                self.allow_small_cohort, "must be true or false")
        require(self.deadline_s is None or (_is_number(self.deadline_s) and self.deadline_s > 0),
                "deadline_s", self.deadline_s, "must be a number of seconds > 0, or unset")
        require(_is_number(self.stragglers) and 0 <= self.stragglers < 1, "stragglers",
                self.stragglers, "must be a fraction in [0, 1)")
        require(self.model in MODELS, "model", self.model, f"must be one of {list(MODELS)}")
        require(_is_int(self.hidden) and self.hidden >= 1, "hidden", self.hidden,
                "must be an integer >= 1")
        require(_is_int(self.local_epochs) and self.local_epochs >= 1, "local_epochs",
                self.local_epochs, "must be an integer >= 1")
        require(_is_int(self.batch_size) and self.batch_size >= 1, "batch_size",
                self.batch_size, "must be an integer >= 1")
        require(_is_number(self.lr) and self.lr > 0, "lr", self.lr, "must be a number > 0")
        require(_is_number(self.momentum) and 0 <= self.momentum < 1, "momentum",
                self.momentum, "must be a number in [0, 1)")
        require(_is_number(self.mu) and self.mu >= 0, "mu", self.mu,
                "must be a number >= 0 (0 is FedAvg, > 0 FedProx)")
        self._check_dp()
        require(_is_int(self.seed) and self.seed >= 0, "seed", self.seed,
                "must be an integer >= 0")
        require(isinstance(self.device, str) and DEVICE_PATTERN.match(self.device) is not None,
                "device", self.device, "must be auto, cpu, cuda or cuda:N")
        require(_is_int(self.threads) and self.threads >= 0, "threads", self.threads,
                "must be an integer >= 0 (0: torch's default)")
        require(self.run_dir is None or (isinstance(self.run_dir, str) and self.run_dir != ""),
                "run_dir", self.run_dir, "must be a folder path")
        require(isinstance(self.personalize, bool), "personalize", self.personalize,
                "must be true or false")
        require(_is_int(self.personalize_epochs) and self.personalize_epochs >= 1,
                "personalize_epochs", self.personalize_epochs, "must be an integer >= 1")
        robust_round.check_config(self)

    def _check_dp(self) -> None:
        require(self.dp is None or self.dp in DP_PLACEMENTS, "dp", self.dp,
                f"must be one of {list(DP_PLACEMENTS)}, or unset")
        require(self.epsilon is None or (_is_number(self.epsilon) and self.epsilon > 0),
                "epsilon", self.epsilon, "must be a number > 0, or unset")
        require((self.dp is None) == (self.epsilon is None), "epsilon", self.epsilon,
                "is the target of DP training: give both --dp and --epsilon, or neither")
        require(_is_number(self.delta) and 0 < self.delta < 1, "delta", self.delta,
                "must be a number in (0, 1)")
        require(_is_number(self.clip_norm) and self.clip_norm > 0, "clip_norm", self.clip_norm,
                "must be a number > 0 (L2 bound on each delta)")
        require(self.dp_survivors is None or (_is_number(self.dp_survivors)
                                              and 0 < self.dp_survivors <= 1),
                "dp_survivors", self.dp_survivors, "must be a fraction in (0, 1], or unset")
        require(self.adaptive_clip is None or (_is_number(self.adaptive_clip)
                                               and 0 < self.adaptive_clip < 1),
                "adaptive_clip", self.adaptive_clip,
                "must be the target quantile of the update norms, in (0, 1), or unset")
        require(self.adaptive_clip is None or self.dp is not None, "adaptive_clip",
                self.adaptive_clip, "is part of DP training: give --dp and --epsilon too")
        require(_is_number(self.adaptive_clip_lr) and self.adaptive_clip_lr > 0,
                "adaptive_clip_lr", self.adaptive_clip_lr, "must be a number > 0")
        require(_is_number(self.adaptive_clip_share) and 0 < self.adaptive_clip_share < 1,
                "adaptive_clip_share", self.adaptive_clip_share, "must be a fraction in (0, 1)")
        require(self.dp_sgd is None or (_is_number(self.dp_sgd) and self.dp_sgd > 0), "dp_sgd",
                self.dp_sgd, "must be a noise multiplier > 0, or unset")
        require(_is_number(self.dp_sgd_clip) and self.dp_sgd_clip > 0, "dp_sgd_clip",
                self.dp_sgd_clip, "must be a number > 0 (per-example L2 clip)")
        require(self.dp_sgd is None or self.mu == 0, "mu", self.mu,
                "must be 0 with DP-SGD (the proximal term would be clipped per example)")
        require(self.dp != "distributed" or self.protocol in DISTRIBUTED_DP_PROTOCOLS, "protocol",
                self.protocol, f"distributed DP needs secure aggregation: one of"
                f" {list(DISTRIBUTED_DP_PROTOCOLS)}")

    @property
    def clients_per_round(self) -> int:
        return sampled_per_round(self.clients, self.fraction)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a dict of option values; an unknown key is an error naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            require(key in known, key, values[key],
                    f"unknown option in {source}; known options: {sorted(known)}")
        values = dict(values)
        for name in ("test_fraction", "alpha", "fraction", "clip", "lr", "momentum", "mu",
                     "deadline_s", "epsilon", "delta", "clip_norm", "dp_survivors",
                     "adaptive_clip", "adaptive_clip_lr", "adaptive_clip_share", "dp_sgd",
                     "dp_sgd_clip"):
            if _is_int(values.get(name)):
                values[name] = float(values[name])
        return cls(**values)

    @classmethod
    def load(cls, toml_path: str | Path | None = None,
             overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Defaults, then the TOML file (if any), then ``overrides`` (e.g. CLI flags)."""
        values: dict[str, Any] = {}
        if toml_path is not None:
            path = Path(toml_path)
            try:
                values.update(tomllib.loads(path.read_text()))
            except OSError as exc:
                raise ConfigurationError(f"config={str(path)!r}: cannot read ({exc.strerror})"
                                         ) from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigurationError(f"config={str(path)!r}: invalid TOML ({exc})") from None
        values.update(overrides or {})
        return cls.from_mapping(values, source=str(toml_path or "overrides"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
