"""Holding back what C++ libraries and Python print on stderr (file descriptor 2), so that a
command's output is its own: TensorFlow's log lines, the TFLite converter's and LiteRT's.

Imports nothing heavy: the command-line scripts and the library share it.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def stderr_into(held):
    """Points file descriptor 2 (C++ and Python alike) at the open file `held` inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(held.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def replay(held, start=0):
    held.seek(start)
    os.write(2, held.read())


@contextlib.contextmanager
def held_stderr():
    """Holds back what is written to stderr inside the block: the TFLite converter's and LiteRT's C++
    lines ("fully_quantize: 0, ...", "Created TensorFlow Lite XNNPACK delegate"), TensorFlow's log
    lines and Python warnings. Dropped when the block ends, or fails with a MobilenetsError or Ctrl-C
    (whose one line says what matters); replayed before any other exception's traceback."""
    from mobilenets.errors import MobilenetsError

    with tempfile.TemporaryFile() as held:
        try:
            with stderr_into(held):
                yield
        except (MobilenetsError, KeyboardInterrupt):
            raise
        except BaseException:
            replay(held)
            raise
