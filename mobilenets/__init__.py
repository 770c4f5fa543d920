"""mobilenets: the MobileNet family (V1, V2, V3, GC/LGC MobileNetV2, IGCV3, V4) in tf_keras.

`build_model` and `list_models` are imported lazily, so light modules
(`mobilenets.errors`, `mobilenets.io`, `hparams`) load without TensorFlow.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of CLI output

from mobilenets.errors import MobilenetsError  # noqa: E402

__all__ = ["MobilenetsError", "build_model", "list_models"]


def __getattr__(name):
    if name in ("build_model", "list_models"):
        from mobilenets.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'mobilenets' has no attribute {name!r}")
