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


class ModelUnavailable(RRError, OSError):
    """A checkpoint that cannot be loaded: not downloaded while the hub is unreachable, or a bad path."""


def model_unavailable(model_id: str, what: str, error: Exception, env_var: str = "") -> ModelUnavailable:
    """The message users need when a checkpoint does not load: which one, why, and what to do."""
    hint = f" or set {env_var} to a local folder" if env_var else ""
    reason = (str(error).splitlines() or [type(error).__name__])[0].rstrip(".")
    return ModelUnavailable(
        f"Cannot load the {what} {model_id!r}: {reason}. "
        f"Download it first (huggingface-cli download {model_id}){hint}, or use --preset tiny for an offline demo."
    )
