"""Where an export lands: the records file, the folder of images beside it, and the portable zip.

Why this shape:
- An export must keep working where it is moved or unpacked, so it never names the image store.
  Images are either embedded (PNG bytes; base64 in JSONL) or copied (hard-linked from the store when
  the file system and permissions allow) into a folder beside the file,
  `<file>.images/ab/cd/<sha256>.png`, and named by a path relative to the file's folder.
- Nothing half-written is ever seen under the final name: the records go to a temp file and the
  images to a temp folder beside the target (`.<name>.<random>.tmp`, `.<name>.images.<random>.tmp`),
  renamed into place at the end (the folder first, then the file).
- A killed export leaves those temp entries behind. While an export runs it holds an exclusive
  `flock` on each of them; the lock dies with the process, so `remove_abandoned_temp_entries` can tell a
  leftover (lock free) from an export in progress (lock held) without guessing from ages.
- Files are created with the permissions an ordinary file gets under the process umask (0644
  under the usual 022), not the 0600 that `tempfile` uses, so a trainer running as another user
  in the same group can read them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PIL import Image as PILImage

from storage.errors import ImageNotFound
from storage.file_modes import file_mode, folder_mode
from storage.images import ImageStore, encode_png

IMAGES_SUFFIX = ".images"
TEMP_SUFFIX = ".tmp"


def images_folder(out: Path) -> Path:
    """The folder beside an export file that holds its images."""
    return out.with_name(out.name + IMAGES_SUFFIX)


def _lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _lock_new(fd: int, path: Path) -> None:
    """Lock a temp entry just made; if the garbage collector removed it first, give up."""
    _lock(fd)
    if os.fstat(fd).st_nlink == 0:
        raise FileNotFoundError(f"{path} was removed as a leftover before it could be locked; export again")


def remove_entry(path: Path) -> None:
    """Delete a file, or a folder with everything in it."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _link_or_copy(source: Path, target: Path, new_file_mode: int) -> None:
    """Hard-link a store file into the export (no copy, and the export outlives the store's garbage
    collection of it), unless its permissions are not `new_file_mode` (what a new file gets here) or
    the two folders are on different file systems: then copy."""
    if stat.S_IMODE(source.stat().st_mode) == new_file_mode:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copyfile(source, target)


class ExportImages:
    """Turns an image into what a record holds: PNG bytes when embedding, else a copy in the export's
    image folder named by its path relative to the export file."""

    def __init__(self, store: ImageStore, embed: bool, folder: Path | None = None, prefix: str = "") -> None:
        if not embed and folder is None:
            raise ValueError("an export that does not embed its images needs a folder to copy them to")
        self.store, self.embed, self.folder, self.prefix = store, embed, folder, prefix
        self.written: set[str] = set()
        # Made and read once per export, not per image.
        self._made_folders: set[Path] = set()
        self._file_mode = file_mode()

    def __call__(self, sha256: str | None) -> str | bytes | None:
        """A stored image by its hash (None passes through: an absent source image)."""
        if sha256 is None:
            return None
        if self.embed:
            return self.store.read_bytes(sha256)
        return self._place(sha256, self._linker(sha256))

    def _linker(self, sha256: str) -> Callable[[Path], None]:
        def link(target: Path) -> None:
            try:
                _link_or_copy(self.store.path(sha256), target, self._file_mode)
            except FileNotFoundError:
                raise ImageNotFound(f"no image file for {sha256}") from None
        return link

    def picture(self, image: PILImage.Image) -> str | bytes:
        """An image made for the export (the SFT export's prepared critic inputs)."""
        data = encode_png(image)
        if self.embed:
            return data
        return self._place(hashlib.sha256(data).hexdigest(), lambda target: target.write_bytes(data))

    def _place(self, sha256: str, write) -> str:
        # One level of 256 folders (the store has two): an export holds far fewer images than the
        # store, and a folder per image cost a mkdir each, half of a linked export's time.
        relative = Path(sha256[:2]) / f"{sha256}.png"
        if sha256 not in self.written:
            target = self.folder / relative
            if target.parent not in self._made_folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._made_folders.add(target.parent)
            write(target)
            self.written.add(sha256)
        return f"{self.prefix}/{relative.as_posix()}"


class ExportTarget:
    """An export being written to `out`: a locked temp file for the records and a locked temp folder
    for the images, both beside `out`, put in place by `commit` or removed on error.

        with ExportTarget(out) as target:
            images = target.images(store, embed)
            ... write records to target.temp_path ...
            target.commit()
    """

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out).absolute()
        self.final_images = images_folder(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._fds: list[int] = []
        self.committed = False
        fd, temp = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=TEMP_SUFFIX, dir=self.out.parent)
        self.temp_path = Path(temp)
        self._fds.append(fd)
        self._made_images: Path | None = None
        try:
            _lock_new(fd, self.temp_path)
            os.fchmod(fd, file_mode())
            self._made_images = Path(tempfile.mkdtemp(prefix=f".{self.final_images.name}.", suffix=TEMP_SUFFIX,
                                                      dir=self.out.parent))
            folder_fd = os.open(self.temp_images, os.O_RDONLY)
            self._fds.append(folder_fd)
            _lock_new(folder_fd, self.temp_images)
            os.chmod(self.temp_images, folder_mode())
        except BaseException:
            self.__exit__(None, None, None)
            raise

    @property
    def temp_images(self) -> Path:
        """The locked temp folder the images go to until `commit`."""
        if self._made_images is None:
            raise RuntimeError("the export's temp folder was not made")
        return self._made_images

    def images(self, store: ImageStore, embed: bool) -> ExportImages:
        """Where this export's images go; paths in records are relative to the export file."""
        return ExportImages(store, embed, None if embed else self.temp_images, self.final_images.name)

    def commit(self) -> None:
        """Put the image folder, then the records file, in place (replacing an earlier export of the
        same name, and its image folder)."""
        with open(self.temp_path, "rb") as handle:
            os.fsync(handle.fileno())
        stale = None
        if self.final_images.exists():
            stale = self.out.parent / f".{self.final_images.name}.old-{os.getpid()}{TEMP_SUFFIX}"
            os.replace(self.final_images, stale)
        if any(self.temp_images.iterdir()):
            os.replace(self.temp_images, self.final_images)
        os.replace(self.temp_path, self.out)
        if stale is not None:
            remove_entry(stale)
        self.committed = True

    def __enter__(self) -> ExportTarget:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        if not self.committed:
            self.temp_path.unlink(missing_ok=True)
        if self._made_images is not None:
            remove_entry(self._made_images)


def write_zip(out: str | os.PathLike[str], zip_path: str | os.PathLike[str] | None = None) -> Path:
    """A portable copy of an export: the records file and its image folder in one zip, with the same
    relative paths, so the records still find their images wherever it is unpacked. Written through
    a locked temp file like the export itself; returns the zip's path (default `<out>.zip`)."""
    out = Path(out).absolute()
    if not out.is_file():
        raise FileNotFoundError(f"no export file at {out}")
    zip_path = Path(zip_path) if zip_path is not None else out.with_name(out.name + ".zip")
    folder = images_folder(out)
    with ExportTarget(zip_path) as target:
        with zipfile.ZipFile(target.temp_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(out, out.name)
            if folder.is_dir():
                for path in sorted(folder.rglob("*.png")):
                    # PNG is already compressed: store it as is.
                    archive.write(path, path.relative_to(out.parent).as_posix(), compress_type=zipfile.ZIP_STORED)
        target.commit()
    return zip_path


def entry_files(path: Path) -> int:
    """Files in a folder (1 for a file)."""
    if path.is_dir() and not path.is_symlink():
        return sum(1 for p in path.rglob("*") if p.is_file())
    return 1


def entry_bytes(path: Path) -> int:
    """Bytes a file, or every file under a folder, takes."""
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def remove_abandoned_temp_entries(folder: str | os.PathLike[str],
                                  dry_run: bool = False) -> list[tuple[Path, int, int]]:
    """Remove the temp files and folders exports left in `folder` when they were killed: `.*.tmp`
    entries whose lock nobody holds (a running export holds its lock, so its entries stay). Each is
    removed while this process holds its lock; an export that locks a name just removed sees it gone
    and fails rather than writing into nothing. Returns (path, files, bytes) of each (to be) removed."""
    removed = []
    for path in sorted(Path(folder).glob(f".*{TEMP_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            try:
                _lock(fd)
            except BlockingIOError:
                continue
            found = (path, entry_files(path), entry_bytes(path))
            if not dry_run:
                remove_entry(path)
            removed.append(found)
        finally:
            os.close(fd)
    return removed
