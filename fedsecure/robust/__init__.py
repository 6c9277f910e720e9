"""Byzantine-robust aggregation rules on plaintext updates (pure NumPy, no protocol knowledge).

``make_rule(name, f=..., **options)`` builds one of :data:`RULES`; calling it on an ``(n, d)``
matrix of updates returns a :class:`RuleResult` (the aggregate and each input's share of it).
:func:`anomaly_scores` scores each update's outlyingness.  How these rules run *under* secure
aggregation (one input per securely aggregated group) is the ``grouped`` protocol in
:mod:`fedsecure.protocols.grouped`; see docs/robust.md.
"""

from __future__ import annotations

import inspect

from fedsecure.errors import ConfigurationError
from fedsecure.robust.anomaly import FLAG_SCORE, anomaly_scores
from fedsecure.robust.base import Mean, Rule, RuleResult
from fedsecure.robust.clipping import CenteredClipping, GeometricMedian, NormBound
from fedsecure.robust.coordinate import Median, TrimmedMean
from fedsecure.robust.distance import Bulyan, Krum, MultiKrum, pairwise_sq_distances

RULES: dict[str, type[Rule]] = {rule.name: rule for rule in (
    Mean, Median, TrimmedMean, Krum, MultiKrum, Bulyan, NormBound, CenteredClipping,
    GeometricMedian)}


def make_rule(name: str, **options) -> Rule:
    """The rule called ``name`` with ``options`` (``f`` and the rule's own parameters)."""
    try:
        cls = RULES[name]
    except KeyError:
        raise ConfigurationError(f"rule={name!r}: unknown; choose one of {sorted(RULES)}"
                                 ) from None
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ConfigurationError(f"rule_options={options!r}: not accepted by rule {name!r}"
                                 f" ({exc})") from None
    return cls(**options)


__all__ = ["RULES", "make_rule", "Rule", "RuleResult", "anomaly_scores", "FLAG_SCORE",
           "pairwise_sq_distances", "Mean", "Median", "TrimmedMean", "Krum", "MultiKrum",
           "Bulyan", "NormBound", "CenteredClipping", "GeometricMedian"]
