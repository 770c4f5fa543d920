"""What the command-line scripts share: a quiet TensorFlow start-up and one-line errors.

Importing this module does not import TensorFlow: scripts parse their
arguments first (so --help is instant), then `import_quietly` the package.
"""

import argparse
import importlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

from mobilenets.quiet import held_stderr, replay, stderr_into  # noqa: E402  (held_stderr: the scripts use it)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser for the commands: the description as written, and a bad flag or value refused in one
    line, `error: ...` (exit code 2), before anything heavy loads."""

    def __init__(self, description=None, **kwargs):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def positive_int(text):
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


# What TensorFlow prints on a machine without a usable GPU when it looks for one: not news there.
NO_GPU_NOISE = ("failed call to cuInit", "Could not find cuda drivers", "GPU will not be used")


def import_quietly(module_name):
    """Imports a module with file descriptor 2 held back, replayed only if the import fails; then,
    when TensorFlow is loaded, lists its devices the same way (the CUDA probe's cuInit error on a
    CPU machine is dropped, anything else replayed) and names the GPUs it will use.

    TensorFlow's C++ start-up lines (oneDNN, CUDA) ignore TF_CPP_MIN_LOG_LEVEL
    in some builds; without this an error would not be the only line on stderr.
    """
    with tempfile.TemporaryFile() as held:
        try:
            with stderr_into(held):
                module = importlib.import_module(module_name)
                mark = os.lseek(held.fileno(), 0, os.SEEK_CUR)
                gpus = probe_devices()
        except KeyboardInterrupt:  # Ctrl-C while TensorFlow loads: the script's one line, not its start-up noise
            raise
        except BaseException:
            replay(held)
            raise
        held.seek(mark)
        kept = [line for line in held.read().splitlines(keepends=True)
                if not any(noise.encode() in line for noise in NO_GPU_NOISE)]
    if kept:
        os.write(2, b"".join(kept))
    if gpus:
        print(f"TensorFlow uses {', '.join(gpus)}", file=sys.stderr)
    return module


def probe_devices():
    """Names of the GPUs TensorFlow sees (it probes CUDA once, here); [] without TensorFlow loaded."""
    if "tensorflow" not in sys.modules:
        return []
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        short = device.name.replace("/physical_device:", "")
        names.append(f"{short} ({details['device_name']})" if details.get("device_name") else short)
    return names


def terminal_progress():
    """A progress(line) that prints each stage of long work to a terminal's stderr ('... loading X'), or None in a
    pipe or a file (nothing extra there). It writes to the terminal itself, so inside `held_stderr` too."""
    if not sys.stderr.isatty():
        return None
    sys.stderr.flush()
    terminal = os.dup(sys.stderr.fileno())
    return lambda line: os.write(terminal, f"... {line}\n".encode())


def one_line_warning(message, category, filename, lineno, file=None, line=None):
    """warnings.showwarning for the commands: `warning: <message>`, without the source path and code line."""
    print(f"warning: {message}", file=file or sys.stderr)


def run(action):
    """Calls `action()`; a MobilenetsError becomes `error: <message>` on stderr and exit code 2. Python
    warnings (skipped images, a partial dataset copy) print as one `warning: ...` line each."""
    import warnings

    from mobilenets.errors import MobilenetsError

    shown, warnings.showwarning = warnings.showwarning, one_line_warning
    try:
        return action() or 0
    except MobilenetsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown
