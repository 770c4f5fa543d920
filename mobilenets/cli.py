"""What the command-line scripts share: a quiet TensorFlow start-up and one-line errors.

Importing this module does not import TensorFlow: scripts parse their
arguments first (so --help is instant), then `import_quietly` the package.
"""

import importlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads


def import_quietly(module_name):
    """Imports a module with file descriptor 2 held back, replayed only if the import fails.

    TensorFlow's C++ start-up lines (oneDNN, CUDA) ignore TF_CPP_MIN_LOG_LEVEL
    in some builds; without this an error would not be the only line on stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            return importlib.import_module(module_name)
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            os.write(2, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def run(action):
    """Calls `action()`; a MobilenetsError becomes `error: <message>` on stderr and exit code 2."""
    from mobilenets.errors import MobilenetsError

    try:
        return action() or 0
    except MobilenetsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
