"""How sure an accuracy is: Wilson score intervals, and when two accuracies tie.

An accuracy measured on ``n`` images is ``k / n`` for ``k`` correct images, a binomial proportion.
Its 95% interval is the Wilson score interval, which (unlike the normal approximation) stays
inside [0, 1] and behaves at accuracies near 0 or 1 and for small ``n``:

    centre = (p + z²/2n) / (1 + z²/n),  half-width = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)

with ``p = k / n`` and ``z`` the normal quantile (1.96 for 95%). With 800 validation images an
accuracy of 0.70 is 0.70 [0.668, 0.731]: gaps of a point or two between models are noise.

Two accuracies *tie* when their intervals overlap. The reports name an interval's ends
``<accuracy>_lower`` and ``<accuracy>_upper`` (:func:`lower_key`), and take ``n`` from the trial, or
from its dataset definition where the stored accuracies fit it (:func:`measured_on`). Pure
functions: no Optuna, no plotting.
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


def format_accuracy(accuracy: float | None, interval: tuple[float, float] | None = None) -> str:
    """An accuracy as every hpo command and report prints it: ``70.13%``, with its 95% interval
    ``70.13% [66.9, 73.2]`` (percent, the interval's ends to 0.1 point); ``-`` for None.

    Args:
        accuracy: A fraction in [0, 1], or None (not measured).
        interval: Its ``(lower, upper)``, or None where the number of images is not known.
    """
    if accuracy is None:
        return "-"
    text = f"{100 * accuracy:.2f}%"
    if interval is None:
        return text
    return f"{text} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def format_interval(accuracy: float, interval: tuple[float, float] | None, digits: int | None = None) -> str:
    """:func:`format_accuracy` (the name earlier callers use; ``digits`` is no longer used)."""
    return format_accuracy(accuracy, interval)


# Column names of an interval's ends beside its accuracy's, e.g. ``val_accuracy_lower``.
LOWER_SUFFIX = "_lower"
UPPER_SUFFIX = "_upper"


def lower_key(name: str) -> str:
    """The column of an accuracy's lower end: ``val_accuracy`` -> ``val_accuracy_lower``."""
    return name + LOWER_SUFFIX


def upper_key(name: str) -> str:
    """The column of an accuracy's upper end: ``val_accuracy`` -> ``val_accuracy_upper``."""
    return name + UPPER_SUFFIX


def is_interval_key(name: str) -> bool:
    """Whether a column is the end of an accuracy's interval (see :func:`lower_key`)."""
    return name.endswith((LOWER_SUFFIX, UPPER_SUFFIX))


def accuracy_interval(accuracy: float | None, n: int | None,
                      confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson interval of an accuracy, or None without an accuracy or an image count.

    Args:
        accuracy: The accuracy, or None (not measured).
        n: The number of images it was measured on, or None (not known).
        confidence: The interval's confidence level.

    Returns:
        ``(lower, upper)`` or None; an accuracy outside [0, 1] or ``n`` below 1 also gives None
        (a report shows the number without an interval rather than failing).
    """
    if accuracy is None or n is None:
        return None
    try:
        return wilson_interval(float(accuracy), int(n), confidence)
    except (TypeError, ValueError):
        return None


# How far ``accuracy * n`` may be from a whole number of images: accuracies are ``k / n`` in
# float64 (float32 sums of k below 2**24 are exact), so the error is ~1e-12 for any real n.
_WHOLE_TOLERANCE = 1e-6


def whole_count(accuracy: float, n: int) -> bool:
    """Whether ``accuracy`` is a whole number of images out of ``n``: ``accuracy * n`` is an integer."""
    k = float(accuracy) * n
    return abs(k - round(k)) <= _WHOLE_TOLERANCE


def measured_on(stored: int | None, derived: int | None, accuracies) -> int | None:
    """The number of images behind some accuracies: the stored count, else a derived one that fits.

    A count derived from a study's dataset definition (``hpo.data.split_sizes``) assumes the real
    CIFAR; the data folder may have held fewer images (a test fake, a smaller image folder). So it
    is used only when every one of the accuracies is a whole number of images out of it.

    Args:
        stored: The count the trial stored (``n_val_images``), or None.
        derived: The count its dataset definition gives, or None.
        accuracies: The accuracies measured on those images (None entries are skipped), e.g. the
            final and every epoch's validation accuracy.

    Returns:
        The count, or None when neither is known or the derived one does not fit.
    """
    if stored is not None:
        return int(stored)
    if derived is None:
        return None
    values = [a for a in accuracies if a is not None]
    if not values or not all(whole_count(a, derived) for a in values):
        return None
    return int(derived)


def ties_with(intervals, index: int) -> list[bool | None]:
    """Which intervals tie with ``intervals[index]``: True/False, None where either is unknown.

    Args:
        intervals: ``(lower, upper)`` or None per item.
        index: The item compared with (it ties with itself).

    Returns:
        One entry per item.
    """
    ref = intervals[index]
    return [None if ref is None or other is None else tie(ref, other) for other in intervals]
