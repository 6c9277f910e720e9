"""Frozen, validated configuration shared by protocols.

Units are in the names: ``clip`` is the per-coordinate clipping bound (absolute value),
``scale_bits`` the number of fractional bits of the fixed-point encoding, ``modulus_bits`` the
bit width k of the ring Z_{2^k} the masked sums live in, ``deadline_s`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fedsecure.errors import ConfigurationError

MAX_MODULUS_BITS = 64


def require(condition: bool, option: str, value, rule: str) -> None:
    """Raise ConfigurationError naming ``option`` and ``value`` unless ``condition`` holds."""
    if not condition:
        raise ConfigurationError(f"{option}={value!r}: {rule}")


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point encoding of weighted sums into Z_{2^k}, with its overflow check.

    A client's coordinate ``x`` is clipped to [-clip, clip], scaled by 2^scale_bits and rounded
    stochastically to an integer q (|q| <= clip*2^scale_bits + 1); it is multiplied by the
    client's integer weight w in [1, max_weight].  The sum over at most ``n_clients`` clients is
    bounded by B = n_clients * max_weight * (clip*2^scale_bits + 1), and is decoded exactly
    whenever 2B + 1 <= 2^k.  ``modulus_bits`` defaults to the smallest such k; a k that is too
    small, or a configuration that needs more than 64 bits, is refused.
    """

    n_clients: int
    clip: float = 1.0
    scale_bits: int = 16
    max_weight: int = 1
    modulus_bits: int | None = None
    bound: int = field(init=False, repr=False)

    def __post_init__(self):
        require(isinstance(self.n_clients, int) and self.n_clients >= 1, "n_clients",
                self.n_clients, "must be an integer >= 1")
        require(math.isfinite(self.clip) and self.clip > 0, "clip", self.clip,
                "must be a finite number > 0")
        require(isinstance(self.scale_bits, int) and 0 <= self.scale_bits <= 52, "scale_bits",
                self.scale_bits, "must be an integer in [0, 52]")
        require(isinstance(self.max_weight, int) and self.max_weight >= 1, "max_weight",
                self.max_weight, "must be an integer >= 1 (weights are integer sample counts)")
        bound = self.n_clients * self.max_weight * (math.ceil(self.clip * 2**self.scale_bits) + 1)
        object.__setattr__(self, "bound", bound)
        needed = (2 * bound + 1 - 1).bit_length()  # smallest k with 2^k >= 2B+1
        if self.modulus_bits is None:
            require(needed <= MAX_MODULUS_BITS, "scale_bits", self.scale_bits,
                    f"n_clients={self.n_clients} x max_weight={self.max_weight} x clip={self.clip}"
                    f" x 2^scale_bits needs a {needed}-bit ring, more than {MAX_MODULUS_BITS}:"
                    " lower scale_bits, clip or max_weight")
            object.__setattr__(self, "modulus_bits", needed)
        else:
            require(isinstance(self.modulus_bits, int)
                    and needed <= self.modulus_bits <= MAX_MODULUS_BITS, "modulus_bits",
                    self.modulus_bits, f"must be in [{needed}, {MAX_MODULUS_BITS}] so that the sum of"
                    f" {self.n_clients} clients cannot wrap around")

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def dtype(self) -> str:
        """Storage / wire dtype of ring elements: uint32 up to 32 bits, else uint64."""
        return "<u4" if self.modulus_bits <= 32 else "<u8"

    @property
    def mask(self) -> int:
        return (1 << self.modulus_bits) - 1

    @property
    def quantization_error(self) -> float:
        """Worst-case absolute error of one decoded coordinate of a weighted *mean*."""
        return 1.0 / self.scale
