"""The one home of argument checks shared by every library package.

Each check refuses a ``bool`` where a number is expected (``bool`` is an ``int`` in
Python), raises ``TypeError`` for a value of the wrong type and ``ValueError`` for a
value of the right type outside its range, and names the argument in the message:
``"Argument `lengthscale` must be > 0, got -1.0"``. Library functions call these
instead of writing their own ``isinstance`` chains, so every package answers a bad
argument the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "check_finite",
    "check_int",
    "check_interval",
    "check_number",
    "check_positive",
    "check_positive_int",
    "is_int",
    "is_number",
]


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer and not a bool.

    Example:
        >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
        (True, True, False, False)
    """
    return isinstance(value, int | np.integer) and not isinstance(
        value, bool | np.bool_
    )


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (int or float, Python or NumPy), not a bool.

    Example:
        >>> is_number(0.5), is_number(np.float32(1)), is_number(False), is_number("1")
        (True, True, False, False)
    """
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer ≥ ``minimum``.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        minimum: the smallest allowed value; ``None`` for no bound.

    Returns:
        ``int(value)``.

    Raises:
        TypeError: if ``value`` is not an integer (a bool is not).
        ValueError: if ``value`` < ``minimum``.

    Example:
        >>> check_int("epochs", np.int64(3), 1)
        3
    """
    if not is_int(value):
        raise TypeError(f"Argument `{name}` must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"Argument `{name}` must be >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is an integer ≥ 1.

    Raises:
        TypeError: if ``value`` is not an integer.
        ValueError: if ``value`` < 1.

    Example:
        >>> check_positive_int("batch_size", 64)
        64
    """
    return check_int(name, value, 1)


def check_number(name: str, value: Any) -> float:
    """Return ``value`` as a ``float`` if it is a real number (not a bool).

    Raises:
        TypeError: if ``value`` is not a number.

    Example:
        >>> check_number("beta", 2)
        2.0
    """
    if not is_number(value):
        raise TypeError(f"Argument `{name}` must be a number, got {value!r}")
    return float(value)


def check_finite(name: str, value: Any) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number.

    Raises:
        TypeError: if ``value`` is not a number.
        ValueError: if ``value`` is nan or ±inf.

    Example:
        >>> check_finite("gamma", 0.5)
        0.5
    """
    out = check_number(name, value)
    if not math.isfinite(out):
        raise ValueError(f"Argument `{name}` must be finite, got {value!r}")
    return out


def check_positive(name: str, value: Any, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a ``float`` if it is a number > 0.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        allow_inf: whether ``inf`` is meaningful here (β = inf is greedy sampling).

    Raises:
        TypeError: if ``value`` is not a number.
        ValueError: if ``value`` ≤ 0, nan, or inf when ``allow_inf`` is false.

    Example:
        >>> check_positive("lengthscale", 0.25)
        0.25
    """
    out = check_number(name, value)
    if not (out > 0 and (allow_inf or math.isfinite(out))):
        bound = "> 0" if allow_inf else "a finite number > 0"
        raise ValueError(f"Argument `{name}` must be {bound}, got {value!r}")
    return out


def check_interval(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    closed: str = "both",
) -> float:
    """Return ``value`` as a ``float`` if it lies in the interval from low to high.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        low: the lower end.
        high: the upper end.
        closed: which ends belong to the interval: ``"both"``, ``"left"``
            ([low, high)), ``"right"`` ((low, high]) or ``"neither"``.

    Returns:
        ``float(value)``.

    Raises:
        TypeError: if ``value`` is not a number.
        ValueError: if ``value`` is outside the interval (nan always is).

    Example:
        >>> check_interval("lr_decay", 1, 0, 1, closed="right")
        1.0
    """
    out = check_number(name, value)
    left = closed in ("both", "left")
    right = closed in ("both", "right")
    ok_low = out >= low if left else out > low
    ok_high = out <= high if right else out < high
    if not (ok_low and ok_high):
        text = f"{'[' if left else '('}{low}, {high}{']' if right else ')'}"
        raise ValueError(f"Argument `{name}` must be in {text}, got {value!r}")
    return out
