"""mobilenets: the MobileNet family (V1, V2, V3, GC/LGC MobileNetV2, IGCV3) in tf_keras."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of CLI output

from mobilenets.errors import MobilenetsError
from mobilenets.registry import build_model, list_models

__all__ = ["MobilenetsError", "build_model", "list_models"]
