"""The shared argument checks of data/checks.py: one bad-input table, known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data.checks import (
    check_finite,
    check_int,
    check_interval,
    check_number,
    check_positive,
    check_positive_int,
    is_int,
    is_number,
)


@pytest.mark.parametrize(
    ("value", "want_int", "want_number"),
    [
        (3, True, True),
        (np.int32(3), True, True),
        (np.uint64(3), True, True),
        (2.5, False, True),
        (np.float32(2.5), False, True),
        (True, False, False),
        (np.bool_(True), False, False),
        ("3", False, False),
        (None, False, False),
        ([1], False, False),
    ],
)
def test_is_int_and_is_number(value, want_int, want_number):
    # Act / Assert: a bool is never a number, a numpy scalar is
    assert is_int(value) is want_int
    assert is_number(value) is want_number


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: check_int("epochs", True),
            TypeError,
            "`epochs` must be an int, got True",
        ),
        (lambda: check_int("epochs", 2.0), TypeError, "must be an int, got 2.0"),
        (lambda: check_int("epochs", 0, 1), ValueError, "`epochs` must be >= 1, got 0"),
        (lambda: check_positive_int("batch", -1), ValueError, "`batch` must be >= 1"),
        (lambda: check_number("beta", False), TypeError, "`beta` must be a number"),
        (lambda: check_number("beta", "1"), TypeError, "`beta` must be a number"),
        (lambda: check_finite("gamma", math.nan), ValueError, "`gamma` must be finite"),
        (lambda: check_finite("gamma", -math.inf), ValueError, "must be finite"),
        (
            lambda: check_positive("ell", 0.0),
            ValueError,
            "`ell` must be a finite number > 0",
        ),
        (lambda: check_positive("ell", math.inf), ValueError, "finite number > 0"),
        (lambda: check_positive("ell", math.nan), ValueError, "finite number > 0"),
        (
            lambda: check_positive("beta", -1, allow_inf=True),
            ValueError,
            "`beta` must be > 0, got -1",
        ),
        (lambda: check_positive("ell", True), TypeError, "must be a number"),
        (
            lambda: check_interval("q", 1.5, 0, 1),
            ValueError,
            r"`q` must be in \[0, 1\]",
        ),
        (
            lambda: check_interval("decay", 0, 0, 1, closed="right"),
            ValueError,
            r"must be in \(0, 1\]",
        ),
        (
            lambda: check_interval("alpha", 1, 0, 1, closed="left"),
            ValueError,
            r"must be in \[0, 1\)",
        ),
        (
            lambda: check_interval("x", math.nan, 0, 1, closed="neither"),
            ValueError,
            r"must be in \(0, 1\)",
        ),
        (lambda: check_interval("x", None, 0, 1), TypeError, "must be a number"),
    ],
)
def test_bad_input(call, error, match):
    # Act / Assert: the type error and the range error name the argument
    with pytest.raises(error, match=match):
        call()


def test_accepted_values_come_back_as_python_scalars():
    # Act
    got = [
        check_int("n", np.int64(5), 5),
        check_int("n", -7),
        check_positive_int("n", 1),
        check_number("x", np.float32(0.5)),
        check_finite("x", -3),
        check_positive("beta", math.inf, allow_inf=True),
        check_interval("q", 0, 0, 1),
        check_interval("q", 1, 0, 1),
        check_interval("decay", 1, 0, 1, closed="right"),
    ]
    # Assert: ints stay ints, numbers become floats; the ends of closed intervals pass
    assert got == [5, -7, 1, 0.5, -3.0, math.inf, 0.0, 1.0, 1.0]
    assert [type(v) for v in got] == [
        int,
        int,
        int,
        float,
        float,
        float,
        float,
        float,
        float,
    ]
