"""Input pipelines: CIFAR-10/100, ImageNet, class-per-folder trees, .npz files
and synthetic data, all through `make_dataset`.

Images come out float32 in the raw pixel range [0, 255] (NHWC), labels int32;
the model normalizes in its first layer.
"""

import importlib

# name -> the module defining it, imported on first use so that `mobilenets.data.layout` loads
# without TensorFlow.
_EXPORTS = {
    "AUGMENTATIONS": "augment",
    "DatasetInfo": "common",
    "SkippedImagesWarning": "folder",
    "dataset_info": "pipeline",
    "list_datasets": "pipeline",
    "make_dataset": "pipeline",
    "scan_folder": "folder",
}

__all__ = [
    "AUGMENTATIONS",
    "DatasetInfo",
    "SkippedImagesWarning",
    "dataset_info",
    "list_datasets",
    "make_dataset",
    "scan_folder",
]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mobilenets.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mobilenets.data' has no attribute {name!r}")
