"""Expected failures shown to the user as their own message instead of Gradio's generic "Error"."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from rr_core.errors import RRError

SHOWN = (RRError, ValueError, LookupError, PermissionError)


def shown_errors(fn: Callable) -> Callable:
    """Turn bad input, access and limit errors into gr.Error with the specific message; the wrapper
    keeps fn's signature, so Gradio still sees its gr.Request parameter."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except SHOWN as exc:
                raise gr.Error(str(exc)) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SHOWN as exc:
            raise gr.Error(str(exc)) from exc
    return wrapper
