"""Differential privacy placements as wrappers around any :class:`Aggregator`.

Theory of operation.  A DP aggregator builds an *inner* aggregator (plaintext, SecAgg, CKKS, ...)
through :func:`~fedsecure.protocols.base.make_aggregator` and wraps its parties: the client
wrapper transforms the vector before ``set_input`` hands it to the inner client, the server
wrapper transforms the inner result -- once, in the call that finishes the inner round, so that
it is the server's measured work and a single release.  The inner protocol is untouched.
Every client's update counts once (weight 1: DP-FedAvg's unweighted sum, McMahan et al., ICLR
2018), after L2 clipping to ``clip_norm`` = C; the result's ``total_weight`` is the number of
survivors.

* ``local`` -- each client releases clip(x) + N(0, (2 z C)^2): its output alone is (epsilon,
  delta)-DP against everyone, the server included, for any change of that client's update
  (replacement: L2 sensitivity 2C).  The inner spec's per-coordinate clip is widened to
  C + 10 sigma so the inner protocol carries the noisy values (a post-processing step).
* ``central`` -- the server adds N(0, (z C)^2) to the decoded sum: (epsilon, delta)-DP for
  adding or removing one client (sensitivity C), trusting the aggregator.
* ``distributed`` -- after Kairouz, Liu and Steinke (ICML 2021): each client rotates its
  clipped update with the public randomized Hadamard rotation (:mod:`.rotation`), scales it by
  1/gamma with gamma = C / (resolution sqrt(d')) -- ``resolution`` integer steps for a typical
  coordinate, by default the finest (at most 64) whose shares fit the exact sampler -- rounds
  it conditionally to an integer vector of L2 norm <= Delta_2 (:mod:`.rounding`) and adds an
  exact discrete Gaussian share N_Z(0, s) (:mod:`.sampling`) *before* the inner protocol
  quantizes and masks it. The inner protocol is run with ``scale_bits=0``: its stochastic
  rounding q = floor(v + u/2^32), u < 2^32, returns every integer |v| < 2^21 unchanged (v +
  u/2^32 is exact in float64), so the masked ring carries exactly the noisy integers. The
  server decodes the integer sum and maps it back with gamma and the inverse rotation; nobody,
  the server included, sees a sum with less than the full noise.

Noise sizing and dropouts (distributed): s = ceil((z Delta_2)^2 / m) with m =
``spec.min_clients``, the fewest survivors with which the inner round may finish, so any
surviving set carries at least the planned noise; :meth:`DPAggregator.privacy_event` accounts a
round with the number of clients that actually survived (more survivors, more noise, smaller
epsilon).

No wrap-around, by construction: each client's noisy integers are bounded per coordinate by
B = floor(Delta_2) + ceil(sqrt(2 s ln(2 n d' / beta))), beta = 1e-12: the rounded part is at most
Delta_2 (an L2 bound bounds each coordinate) and, the discrete Gaussian being s-subgaussian
(Canonne, Kamath and Steinke 2020, Proposition 25), some noise coordinate of some client
exceeds the rest with probability <= beta per round; the inner spec's per-coordinate ``clip``
is B, so the inner quantizer clamps that rare excess and the inner :class:`FixedPoint` sizes
the ring for n (B + 1) -- the check SecAgg already performs, which refuses any ring that could
wrap.  The clamp event (probability <= beta) is outside the guarantee: the accounted delta
grows by at most (1 + e^epsilon) beta per round.

Adaptive clipping (Andrew, Thakkar, McMahan and Ramaswamy, NeurIPS 2021), ``count_share`` = f:
each client also reports whether its update was within C = ``clip_norm``, as one more
coordinate of the vector the placement noises: u = (clip_C(x), beta (b - 1/2)) with b =
[||x|| <= C] and beta = 2 C sqrt(f / (1 - f)), so ||u|| <= C' = C / sqrt(1 - f).  The placement
runs on u with sensitivity C' and the same noise multiplier z, so the round -- update sum and
count together -- is exactly the Gaussian (or distributed discrete Gaussian) release already
accounted, with nothing added to epsilon; the update sum gets noise z C' = z C / sqrt(1 - f)
(Andrew et al.'s z_Delta = (z^-2 - (2 sigma_b)^-2)^-1/2) and the count, decoded as
sum / beta + n / 2, noise sigma_b = z / (2 sqrt f) (a fraction f of the 1/z^2 "budget").  The
count travels inside the inner protocol like every other coordinate, so under SecAgg nobody sees
a single client's bit; :class:`~fedsecure.dp.clipping.AdaptiveClip` moves C with it.
"""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from fedsecure.config import require
from fedsecure.dp import accounting
from fedsecure.dp.clipping import l2_clip
from fedsecure.dp.rotation import HadamardRotation, padded_length, rotation_seed
from fedsecure.dp.rounding import conditional_round, rounded_l1_bound, rounded_l2_bound
from fedsecure.dp.sampling import MAX_VARIANCE, discrete_gaussian, gaussian
from fedsecure.errors import ConfigurationError, InvalidInput
from fedsecure.protocols.base import (
    AggregateResult,
    AggregationSpec,
    Aggregator,
    ClientParty,
    ServerParty,
    make_aggregator,
    validate_vector,
)
from fedsecure.rng import DEFAULT_RNG, RandomSource

PLACEMENTS = ("local", "central", "distributed")
TAIL_PROBABILITY = 1e-12
MAX_RESOLUTION = 64.0
EXACT_INTEGER_BOUND = 2**21  # SecAgg's quantizer keeps integers below this unchanged


@dataclass(frozen=True)
class DPAggregateResult(AggregateResult):
    """A DP round's result; under adaptive clipping also the noisy number of survivors whose
    update was within the clipping norm (``None`` under fixed clipping)."""

    unclipped_count: float | None = None


class _Delegating:
    """The sans-I/O surface of a party, forwarded to the wrapped ``inner`` party."""

    inner: ClientParty | ServerParty

    @property
    def phase(self) -> str:
        return self.inner.phase

    def start(self) -> None:
        self.inner.start()

    def receive(self, envelope) -> None:
        self.inner.receive(envelope)

    def messages_to_send(self) -> list:
        return self.inner.messages_to_send()

    def next_event(self):
        return self.inner.next_event()

    @property
    def done(self) -> bool:
        return self.inner.done

    def peer_failed(self, peer, error) -> None:
        self.inner.peer_failed(peer, error)

    @property
    def max_message_bytes(self) -> int:
        return self.inner.max_message_bytes


class _ClientWrapper(_Delegating, ClientParty):
    """An inner client whose input is transformed by ``encode`` first."""

    def __init__(self, inner: ClientParty, length: int, encode: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self.inner, self._length, self._encode = inner, length, encode
        self.party_id = inner.party_id
        self.encoded: np.ndarray | None = None  # what this client handed the inner protocol

    def set_input(self, vector, weight: int = 1) -> None:
        if weight != 1:
            raise InvalidInput(f"weight={weight!r}: DP aggregation is unweighted (each clipped"
                               " update counts once); pass weight 1")
        self.encoded = self._encode(validate_vector(vector, self._length))
        self.inner.set_input(self.encoded, 1)


class _ServerWrapper(_Delegating, ServerParty):
    """An inner server whose result is transformed by ``decode`` -- once, inside the call that
    finishes the inner round: a driver counts the decoding (central DP's noise, distributed
    DP's inverse rotation) as the server's work, and every ``result()`` is that one release
    (never a fresh draw of the noise)."""

    def __init__(self, inner: ServerParty, decode: Callable[[AggregateResult], AggregateResult]):
        super().__init__()
        self.inner, self._decode = inner, decode
        self._released: AggregateResult | None = None

    def _settle(self) -> None:
        if self._released is None and self.inner.done and self.inner.aborted is None:
            self._released = self._decode(self.inner.result())

    def start(self) -> None:
        self.inner.start()
        self._settle()

    def receive(self, envelope) -> None:
        self.inner.receive(envelope)
        self._settle()

    def peer_failed(self, peer, error) -> None:
        self.inner.peer_failed(peer, error)
        self._settle()

    @property
    def ready_for_next_round(self) -> bool:
        return self.inner.ready_for_next_round

    @property
    def deadline_phase(self):
        return self.inner.deadline_phase

    def proceed_to_next_round(self) -> None:
        self.inner.proceed_to_next_round()
        self._settle()

    @property
    def aborted(self):
        return self.inner.aborted

    def result(self) -> AggregateResult:
        """The decoded result, drawn once (see the class docstring): asking again returns the
        same release (the MPI runner asks more than once)."""
        self._settle()
        if self._released is None:
            return self.inner.result()  # aborted or unfinished: the inner server raises why
        return self._released


class DPAggregator(Aggregator):
    """Common part of the three placements (see the module docstring)."""

    placement: str

    def __init__(self, spec: AggregationSpec, *, protocol: str = "secagg",
                 protocol_options: Mapping | None = None, clip_norm: float = 1.0,
                 noise_multiplier: float, count_share: float | None = None,
                 rng: RandomSource = DEFAULT_RNG):
        super().__init__(spec, rng=rng)
        require(math.isfinite(clip_norm) and clip_norm > 0, "clip_norm", clip_norm,
                "must be a finite number > 0")
        require(math.isfinite(noise_multiplier) and noise_multiplier > 0, "noise_multiplier",
                noise_multiplier, "must be a finite number > 0")
        require(count_share is None or 0 < count_share < 1, "count_share", count_share,
                "must be in (0, 1) (adaptive clipping), or None (fixed clipping)")
        self.update_clip, self.noise_multiplier = float(clip_norm), float(noise_multiplier)
        self.count_share = count_share
        if count_share is None:  # the placement's sensitivity and vector: the update alone
            self.clip_norm, self.mechanism_length = self.update_clip, spec.vector_length
        else:  # ... or the update and the scaled count bit (module docstring)
            self.clip_norm = self.update_clip / math.sqrt(1 - count_share)
            self.count_scale = 2 * self.update_clip * math.sqrt(count_share / (1 - count_share))
            self.mechanism_length = spec.vector_length + 1
        self.protocol = protocol
        self._configure()
        inner_spec = dataclasses.replace(self._inner_spec(), session=self.session)
        self.inner = make_aggregator(protocol, inner_spec, rng=rng,
                                     **self._inner_options(dict(protocol_options or {})))

    def _configure(self) -> None:
        """Derive the placement's parameters (before the inner aggregator is built)."""

    def _inner_spec(self) -> AggregationSpec:
        return dataclasses.replace(self.spec, vector_length=self.mechanism_length, max_weight=1,
                                   clip=self.clip_norm)

    def _inner_options(self, options: dict) -> dict:
        return options

    def client(self, client_id: int, *, rng: RandomSource | None = None) -> ClientParty:
        self.check_client_id(client_id)
        rng = rng or self.rng
        return _ClientWrapper(self.inner.client(client_id, rng=rng), self.spec.vector_length,
                              lambda x: self._encode(self._with_count(x), rng))

    def server(self, *, rng: RandomSource | None = None) -> ServerParty:
        rng = rng or self.rng
        return _ServerWrapper(self.inner.server(rng=rng),
                              lambda r: self._release(self._decode(r, rng)))

    def _with_count(self, x: np.ndarray) -> np.ndarray:
        """Adaptive clipping: the clipped update and the client's scaled, centred count bit."""
        if self.count_share is None:
            return x
        bit = float(np.linalg.norm(x) <= self.update_clip)
        return np.append(l2_clip(x, self.update_clip), self.count_scale * (bit - 0.5))

    def _release(self, result: AggregateResult) -> DPAggregateResult:
        """The decoded result, with the noisy count split off under adaptive clipping."""
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(AggregateResult)}
        if self.count_share is None:
            return DPAggregateResult(**fields)
        total = result.weighted_sum
        count = float(total[-1]) / self.count_scale + len(result.survivors) / 2
        return DPAggregateResult(**{**fields, "weighted_sum": total[:-1]}, unclipped_count=count)

    def _encode(self, x: np.ndarray, rng: RandomSource) -> np.ndarray:
        return l2_clip(x, self.clip_norm)

    def _decode(self, result: AggregateResult, rng: RandomSource) -> AggregateResult:
        return dataclasses.replace(result, total_weight=float(len(result.survivors)))

    @property
    def quantization_error(self) -> float:
        return self.inner.quantization_error

    def max_message_bytes(self, *, to_server: bool) -> int:
        return self.inner.max_message_bytes(to_server=to_server)

    @abstractmethod
    def privacy_event(self, n_survivors: int):
        """The dp_accounting event of one round in which ``n_survivors`` clients survived."""

    @property
    def planned_event(self):
        """The event of the worst round the spec allows (``min_clients`` survivors)."""
        return self.privacy_event(self.spec.min_clients)


class LocalDPAggregator(DPAggregator):
    placement = "local"

    def _configure(self) -> None:
        self.stddev = self.noise_multiplier * 2 * self.clip_norm

    def _inner_spec(self) -> AggregationSpec:
        return dataclasses.replace(self.spec, vector_length=self.mechanism_length, max_weight=1,
                                   clip=self.clip_norm + 10 * self.stddev)

    def _encode(self, x, rng):
        return l2_clip(x, self.clip_norm) + gaussian(rng, self.stddev, x.size)

    def privacy_event(self, n_survivors: int):
        return accounting.gaussian_event(self.noise_multiplier)


class CentralDPAggregator(DPAggregator):
    placement = "central"

    def _configure(self) -> None:
        self.stddev = self.noise_multiplier * self.clip_norm

    def _decode(self, result, rng):
        noisy = result.weighted_sum + gaussian(rng, self.stddev, result.weighted_sum.size)
        return dataclasses.replace(super()._decode(result, rng), weighted_sum=noisy)

    def privacy_event(self, n_survivors: int):
        return accounting.gaussian_event(self.noise_multiplier)


class DistributedDPAggregator(DPAggregator):
    placement = "distributed"

    def __init__(self, spec: AggregationSpec, *, resolution: float | None = None,
                 rounding_beta: float = 1e-3, **kwargs):
        require(resolution is None or (math.isfinite(resolution) and resolution > 0),
                "resolution", resolution, "must be a finite number > 0 (integer steps per"
                " typical coordinate), or None for the finest that fits")
        self.resolution, self.rounding_beta = resolution, rounding_beta
        super().__init__(spec, **kwargs)

    def _finest_resolution(self) -> float:
        """The largest resolution (at most MAX_RESOLUTION) whose shares fit the exact sampler:
        (z Delta_2)^2 / m <= 2^24 with Delta_2 <= (resolution + 1) sqrt(d')."""
        fits = math.sqrt(MAX_VARIANCE * self.spec.min_clients) / (
            self.noise_multiplier * math.sqrt(self.padded)) - 1
        return min(MAX_RESOLUTION, 0.99 * fits)

    def _configure(self) -> None:
        n, d = self.spec.n_clients, self.mechanism_length
        self.padded = padded_length(d)
        self.rotation = HadamardRotation(d, rotation_seed(self.session, self.spec.round))
        if self.resolution is None:
            self.resolution = self._finest_resolution()
            require(self.resolution > 0, "noise_multiplier", self.noise_multiplier,
                    f"is too large for {self.spec.min_clients} shares of the exact sampler")
        self.granularity = self.clip_norm / (self.resolution * math.sqrt(self.padded))
        self.l2_bound = rounded_l2_bound(self.clip_norm / self.granularity, self.padded,
                                         self.rounding_beta)
        self.l1_bound = rounded_l1_bound(self.l2_bound, self.padded)
        target = (self.noise_multiplier * self.l2_bound) ** 2
        self.local_variance = math.ceil(target / self.spec.min_clients)
        require(self.local_variance <= MAX_VARIANCE, "noise_multiplier", self.noise_multiplier,
                f"needs a per-client variance {self.local_variance} > 2^24 integer units:"
                " lower resolution")
        tail = math.sqrt(2 * self.local_variance * math.log(2 * n * self.padded / TAIL_PROBABILITY))
        self.coordinate_bound = math.floor(self.l2_bound) + math.ceil(tail)
        require(self.coordinate_bound < EXACT_INTEGER_BOUND, "resolution", self.resolution,
                f"gives per-coordinate integers up to {self.coordinate_bound} >= 2^21: lower"
                " resolution or noise_multiplier")

    def _inner_spec(self) -> AggregationSpec:
        return dataclasses.replace(self.spec, vector_length=self.padded, max_weight=1,
                                   clip=float(self.coordinate_bound))

    def _inner_options(self, options: dict) -> dict:
        if options.get("scale_bits", 0) != 0:
            raise ConfigurationError(f"scale_bits={options['scale_bits']!r}: distributed DP"
                                     " hands the inner protocol integers; it runs with 0")
        return {**options, "scale_bits": 0}

    def _encode(self, x, rng):
        scaled = self.rotation.forward(l2_clip(x, self.clip_norm)) / self.granularity
        rounded = conditional_round(rng, scaled, self.l2_bound)
        return (rounded + discrete_gaussian(rng, self.local_variance, self.padded)).astype(
            np.float64)

    def _decode(self, result, rng):
        estimate = self.rotation.inverse(result.weighted_sum * self.granularity)
        return dataclasses.replace(super()._decode(result, rng), weighted_sum=estimate)

    def privacy_event(self, n_survivors: int):
        return accounting.distributed_discrete_gaussian_event(
            l2_bound=self.l2_bound, l1_bound=self.l1_bound, local_variance=self.local_variance,
            n_survivors=n_survivors, dim=self.padded)

    @property
    def quantization_error(self) -> float:
        return self.granularity


_CLASSES = {"local": LocalDPAggregator, "central": CentralDPAggregator,
            "distributed": DistributedDPAggregator}


def make_dp_aggregator(placement: str, spec: AggregationSpec, **options) -> DPAggregator:
    """The DP aggregator of ``placement`` (local, central, distributed) over ``spec``.

    ``options``: ``protocol`` (inner protocol name), ``protocol_options``, ``clip_norm``,
    ``noise_multiplier``, ``count_share`` (adaptive clipping: the share f of the noise budget
    spent on the unclipped count; None: fixed clipping), ``rng``; distributed also
    ``resolution`` and ``rounding_beta``.
    """
    require(placement in PLACEMENTS, "dp", placement, f"must be one of {PLACEMENTS}")
    return _CLASSES[placement](spec, **options)
