"""String-level grammar matching for the tests: xgrammar's matcher with an empty vocabulary."""

from functools import lru_cache

import xgrammar as xgr


@lru_cache(maxsize=32)
def _compiled(grammar: str):
    return xgr.GrammarCompiler(xgr.TokenizerInfo([]), cache_enabled=False).compile_grammar(grammar)


def _matcher(grammar: str) -> xgr.GrammarMatcher:
    return xgr.GrammarMatcher(_compiled(grammar), terminate_without_stop_token=True)


def accepts(grammar: str, text: str) -> bool:
    """Whether `text` is a complete sentence of `grammar`."""
    matcher = _matcher(grammar)
    return matcher.accept_string(text) and matcher.is_terminated()


def live_matcher(grammar: str):
    """A fresh matcher to feed text piece by piece (`accept_string`, `is_completed`)."""
    return _matcher(grammar)
