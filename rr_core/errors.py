"""Errors with specific, user-facing messages. A UI shows `str(error)` as is."""


class RRError(Exception):
    """Base class of the project's expected errors (bad input, unreachable services)."""


class InvalidRequest(RRError, ValueError):
    """The request text is empty, too long or otherwise unusable."""


class InvalidImage(RRError, ValueError):
    """An upload that does not decode, is too large, or has a mode that cannot be used."""


class CriticUnavailable(RRError, ConnectionError):
    """The critic server cannot be reached or keeps failing; the message names the URL."""


class TemplateError(RRError, ValueError):
    """A prompt template file is missing fields or placeholders."""
