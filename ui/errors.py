"""Expected failures shown to the user as their own message instead of Gradio's generic "Error".

The studio checks every value at its entry points (studio.settings) and says what is wrong; what a
check has missed and Python itself refuses (an OverflowError from a number too large for an int64
column, a TypeError or AttributeError from a value of the wrong type) still reaches the user as a
message that says which kind of mistake it was, and is logged with its traceback so the missing
check can be added.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from rr_core.errors import RRError

log = logging.getLogger(__name__)

SHOWN = (RRError, ValueError, LookupError, PermissionError)
"""Errors whose text is written for the user."""

LEFTOVER = (OverflowError, TypeError, AttributeError)
"""Errors Python raises on a bad value no check caught; shown by kind (see `leftover_message`)."""


def leftover_message(exc: BaseException) -> str:
    """The user's message for a bad value no check caught."""
    detail = (str(exc).splitlines() or [""])[0][:200]
    if isinstance(exc, OverflowError):
        return f"A number in this request is too large or not finite ({detail}). Send a smaller whole number."
    return (f"A value in this request has the wrong type ({detail}). Check each field's type in "
            "docs/api.md: ids and counts are whole numbers, flags true or false, verdicts a mapping.")


def as_shown(exc: BaseException) -> gr.Error:
    """The gr.Error the user sees for `exc` (one of SHOWN or LEFTOVER)."""
    if isinstance(exc, SHOWN):
        return gr.Error(str(exc))
    log.warning("bad input not caught by a check: %s", exc, exc_info=exc)
    return gr.Error(leftover_message(exc))


def shown_errors(fn: Callable) -> Callable:
    """Turn bad input, access and limit errors into gr.Error with the specific message; the wrapper
    keeps fn's signature, so Gradio still sees its gr.Request parameter."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except SHOWN + LEFTOVER as exc:
                raise as_shown(exc) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SHOWN + LEFTOVER as exc:
            raise as_shown(exc) from exc
    return wrapper
