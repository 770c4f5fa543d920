"""One process per run directory: RUN_DIR/run.lock, an exclusive `flock` held while training.

The kernel drops a `flock` when its process ends however it ends (SIGKILL included), so a lock
left by a killed run is stale by construction and the next run takes it over; a live holder makes
the second process refuse with one line naming its PID (written into the file). Pure Python (no
TensorFlow). A process may take the lock of a run directory it already holds again (a run resumed
or restarted in the same process).
"""

import fcntl
import os
import socket

from mobilenets.errors import ConfigError

LOCK_FILE = "run.lock"
_held = {}  # real path of a run directory -> (open file, count, outermost directory acquire created or None)


def _holder(handle):
    handle.seek(0)
    return handle.read().strip() or "unknown"


def acquire(run_dir):
    """Takes RUN_DIR's lock; ConfigError naming the holding process when another one has it, or when
    RUN_DIR cannot be created. Returns the outermost directory this call created (None if none)."""
    key = os.path.realpath(run_dir)
    if key in _held:
        handle, count, created = _held[key]
        _held[key] = (handle, count + 1, created)
        return None
    created, path = None, os.path.abspath(run_dir)
    while not os.path.isdir(path):  # the outermost directory this call creates
        created, path = path, os.path.dirname(path)
    try:
        os.makedirs(run_dir, exist_ok=True)
        handle = open(os.path.join(run_dir, LOCK_FILE), "a+")
    except OSError as error:
        raise ConfigError(f"cannot create the run directory {run_dir} ({error.strerror or error}); pick another "
                          f"--run-dir") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder(handle)
        handle.close()
        raise ConfigError(f"{run_dir} is in use by the training process {holder}; wait for it to finish, stop it, "
                          f"or choose another --run-dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _held[key] = (handle, 1, created)
    return created


def release(run_dir):
    """Gives back one acquire() of RUN_DIR; the lock is dropped with the last one."""
    key = os.path.realpath(run_dir)
    if key not in _held:
        return
    handle, count, created = _held.pop(key)
    if count > 1:
        _held[key] = (handle, count - 1, created)
        return
    if created and os.listdir(run_dir) == [LOCK_FILE]:  # a run that failed before writing anything
        os.remove(os.path.join(run_dir, LOCK_FILE))
        directory = os.path.abspath(run_dir)
        while os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)
            if directory == created:
                break
            directory = os.path.dirname(directory)
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()
