"""Storage errors: each names what went wrong so the UI can show `str(error)` as is."""

from __future__ import annotations

import errno

from rr_core.errors import InvalidImage, RRError


class NotFound(RRError, LookupError):
    """A row asked for by id does not exist (or is not visible to the caller)."""


class SessionAccessDenied(RRError, PermissionError):
    """A user asked for a session, round or critique that belongs to another user."""


class InvalidImageHash(RRError, ValueError):
    """An image key that is not 64 lowercase hex digits: never turned into a path."""


class ImageNotFound(NotFound, FileNotFoundError):
    """The image store has no file for a valid hash."""


class ImageTooLarge(InvalidImage):
    """An image whose PNG encoding is over the store's per-image cap."""


class StorageFull(RRError, OSError):
    """The disk is full (ENOSPC): nothing partial was left behind."""


def disk_full(error: OSError, what: str) -> OSError:
    """`error` as a StorageFull that names `what` could not be written when it is ENOSPC (the user
    then reads what to do, not Gradio's generic "Error"), else `error` itself."""
    if error.errno == errno.ENOSPC and not isinstance(error, StorageFull):
        return StorageFull(errno.ENOSPC, f"{what}'s disk is full: free space (python -m storage.gc removes "
                                         "old exports and unused images) or move RR_DATA_DIR")
    return error
