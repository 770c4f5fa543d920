"""Input pipelines: CIFAR-10/100, ImageNet, class-per-folder trees, .npz files
and synthetic data, all through `make_dataset`.

Images come out float32 in the raw pixel range [0, 255] (NHWC), labels int32;
the model normalizes in its first layer.
"""

from mobilenets.data.augment import AUGMENTATIONS
from mobilenets.data.common import DatasetInfo
from mobilenets.data.folder import SkippedImagesWarning, scan_folder
from mobilenets.data.pipeline import dataset_info, list_datasets, make_dataset

__all__ = [
    "AUGMENTATIONS",
    "DatasetInfo",
    "SkippedImagesWarning",
    "dataset_info",
    "list_datasets",
    "make_dataset",
    "scan_folder",
]
