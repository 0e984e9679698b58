"""How sure an accuracy is: Wilson score intervals, and when two accuracies tie.

An accuracy measured on ``n`` images is ``k / n`` for ``k`` correct images, a binomial proportion.
Its 95% interval is the Wilson score interval, which (unlike the normal approximation) stays
inside [0, 1] and behaves at accuracies near 0 or 1 and for small ``n``:

    centre = (p + z²/2n) / (1 + z²/n),  half-width = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)

with ``p = k / n`` and ``z`` the normal quantile (1.96 for 95%). With 800 validation images an
accuracy of 0.70 is 0.70 [0.668, 0.731]: gaps of a point or two between models are noise.

Two accuracies *tie* when their intervals overlap. Pure functions: no Optuna, no plotting.
"""

from __future__ import annotations

import math
from statistics import NormalDist

CONFIDENCE = 0.95


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile of a confidence level (1.959964 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(accuracy: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of an accuracy measured on ``n`` images.

    Args:
        accuracy: The fraction of images classified correctly, in [0, 1].
        n: How many images it was measured on (>= 1).
        confidence: The interval's confidence level.

    Returns:
        ``(lower, upper)``, both in [0, 1].

    Raises:
        ValueError: ``n`` below 1, or an accuracy outside [0, 1] or not finite.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a whole number of images >= 1, got {n!r}")
    if not math.isfinite(accuracy) or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy!r}")
    z = z_value(confidence)
    z2n = z * z / n
    centre = (accuracy + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(accuracy * (1 - accuracy) / n + z2n / (4 * n))
    # Clamped to the accuracy itself: at 0 or 1 the formula's ends equal it up to rounding.
    return max(0.0, min(accuracy, centre - half)), min(1.0, max(accuracy, centre + half))


def tie(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals ``(lower, upper)`` overlap: the accuracies are not told apart."""
    return a[0] <= b[1] and b[0] <= a[1]


def format_interval(accuracy: float, interval: tuple[float, float] | None, digits: int = 4) -> str:
    """``0.7013 [0.6689, 0.7318]``, or the accuracy alone without an interval."""
    if interval is None:
        return f"{accuracy:.{digits}f}"
    return f"{accuracy:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
