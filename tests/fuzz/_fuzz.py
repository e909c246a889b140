"""The contract every fuzz test checks, and how many examples it draws.

``make test`` draws a few examples per property; ``make fuzz`` (``BIRNN_FUZZ=long``) many.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

LONG = os.environ.get("BIRNN_FUZZ") == "long"
FUZZ = settings(
    max_examples=1500 if LONG else 12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def clean_or_named(call: Callable[[], Any], *names: str) -> Any:
    """``call()``'s result, or None when it raised ValueError, TypeError or OSError (birnn's error
    types derive from them) whose message names one of ``names`` (a file, an argument).

    Any other exception -- IndexError, RuntimeError, KeyError, RecursionError … -- fails the test.
    """
    try:
        return call()
    except (ValueError, TypeError, OSError) as exc:
        message = str(exc)
        assert message.strip(), f"{type(exc).__name__} without a message"
        assert any(name in message for name in names), f"{type(exc).__name__}: {message!r} names none of {names}"
        return None
