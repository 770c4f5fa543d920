"""Atomic file writes: a reader never sees half a file.

Everything is first written to a temporary name in the destination's own
directory (same filesystem, so `os.replace` is atomic), fsynced, then renamed.
On any error the temporary is removed and the previous file stays intact.
"""

import contextlib
import errno
import json
import os
import shutil
import tempfile

from mobilenets.errors import ConfigError, MobilenetsError, first_line

# A write the disk refused for room: full, over quota, or past the file size limit (RLIMIT_FSIZE, FAT32).
NO_ROOM = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EFBIG: "the file is larger than the disk or the process's file size limit allows"}


class WriteError(MobilenetsError, OSError):
    """A file could not be written (full disk, unwritable directory); the previous file is intact.
    An OSError too, for callers that catch those."""


def _size_text(count):
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024


def no_room_error(path, error, needed=None):
    """The one-line WriteError of a write to `path` that failed with a NO_ROOM `error`."""
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(directory):  # the nearest directory there is, when making `path`'s failed
        directory = os.path.dirname(directory)
    free = f"{_size_text(shutil.disk_usage(directory).free)} free in {directory}"
    room = f"{_size_text(needed)} needed, {free}" if needed is not None else free
    return WriteError(f"cannot write {path}: {NO_ROOM[error.errno]} ({error.strerror}; {room}); free some space "
                      f"or write elsewhere, nothing was written")


def _remove(tmp):
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    elif os.path.exists(tmp):
        os.remove(tmp)


def _temporary_path(path, suffix):
    """A free temporary name next to `path` (its directory made if missing); WriteError if it cannot be."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix,
                                   dir=directory)
    except OSError as error:
        if error.errno in NO_ROOM:
            raise no_room_error(path, error) from None
        raise WriteError(f"cannot write {path} ({error.strerror or error}); pick another path") from None
    os.close(fd)
    os.remove(tmp)
    return tmp


@contextlib.contextmanager
def atomic_path(path, suffix="", size=None):
    """Yields a temporary path next to `path`; renames it onto `path` on success.

    Works for a file or a directory (e.g. a SavedModel). `suffix` lets writers
    that choose a format from the extension (`.h5`, `.keras`) see the right one.
    A full disk (or an unwritable directory) raises a one-line WriteError, naming
    `size` (the bytes to write) when given.
    """
    path = os.fspath(path)
    tmp = _temporary_path(path, suffix)
    try:
        yield tmp
        if os.path.isdir(tmp):
            old = None
            if os.path.exists(path):
                old = tmp + ".old"
                os.replace(path, old)
            os.replace(tmp, path)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        else:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except OSError as error:
        if error.errno not in NO_ROOM:
            raise
        _remove(tmp)  # before measuring the free space
        raise no_room_error(path, error, size) from None
    finally:
        _remove(tmp)


def write_bytes(path, data):
    with atomic_path(path, size=len(data)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def reporting_write_errors(path):
    """Turns a failed write to `path` (missing directory, permissions) into a one-line ConfigError; our own
    errors (a WriteError of a full disk) pass as they are."""
    try:
        yield
    except MobilenetsError:
        raise
    except OSError as error:
        raise ConfigError(f"cannot write {path} ({error.strerror or first_line(error, 200)}); pick another path") from None
