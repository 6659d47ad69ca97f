"""The permissions a new file or folder gets under the process umask.

`tempfile` creates files 0600 and folders 0700 whatever the umask; files the studio shares (exports,
the image store) are set to what `open` and `mkdir` would have made instead, so a trainer or a
backup running as another user of the group can read them when the umask allows it.
"""

from __future__ import annotations

import os


def process_umask() -> int:
    """The process umask, read without changing it where the OS tells (Linux), else set and reset."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What `open(path, "w")` would give a new file: 0666 less the umask."""
    return 0o666 & ~process_umask()


def folder_mode() -> int:
    """What `mkdir` would give a new folder: 0777 less the umask."""
    return 0o777 & ~process_umask()
