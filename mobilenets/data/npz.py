"""A `.npz` file with `x` (N, H, W, 3) uint8 images and `y` (N,) integer
labels, split into train / validation by a fraction and a seed of its own
(independent of the shuffling seed, so every run validates on the same images).
"""

import zipfile
import zlib

import numpy as np

from mobilenets.data.common import DatasetInfo, check_labels, in_memory_source, require_path, resolve_split
from mobilenets.errors import DataError, first_line

DEFAULT_AUGMENT = "cifar"
EVAL_CROP_FRACTION = 1.0
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "validation"}
HOW_TO = "pass data_dir=PATH.npz, a file saved with numpy.savez(PATH, x=images, y=labels)"


def split_indices(num_examples, validation_fraction, split_seed):
    """{'train': indices, 'validation': indices}, each sorted (the file's order is kept)."""
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    order = np.random.default_rng(split_seed).permutation(num_examples)
    num_validation = int(round(num_examples * validation_fraction))
    return {"validation": np.sort(order[:num_validation]), "train": np.sort(order[num_validation:])}


def read_arrays(path):
    """(x, y) of the file, checked; DataError naming the file otherwise."""
    path = require_path(path, "npz file", HOW_TO)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise DataError(f"{path} has no array '{missing[0]}' (it has {archive.files}); {HOW_TO}")
            x, y = archive["x"], archive["y"]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as e:
        raise DataError(
            f"{path} is truncated or not an npz file ({type(e).__name__}: {first_line(e, 100)}); recreate it. {HOW_TO}"
        ) from e
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise DataError(f"{path}: x must be uint8 of shape (N, H, W, 3), got {x.dtype} {x.shape}; {HOW_TO}")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y must be integers of shape ({len(x)},), got {y.dtype} {y.shape}; {HOW_TO}")
    return x, y


def info(name, data_dir=None, *, validation_fraction=0.15, split_seed=0, num_classes=None):
    if data_dir is None:
        return DatasetInfo(name, num_classes, (32, 32), {"train": None, "validation": None}, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)
    x, y = read_arrays(data_dir)
    splits = {k: len(v) for k, v in split_indices(len(x), validation_fraction, split_seed).items()}
    classes = num_classes or int(y.max()) + 1
    return DatasetInfo(name, classes, tuple(x.shape[1:3]), splits, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)


def load(request, *, validation_fraction=0.15, split_seed=0, num_classes=None):
    """Source over one split of the npz file at `data_dir`.

    `num_classes`: labels must lie in 0..num_classes-1 (default: any
    non-negative label is accepted).
    """
    split = resolve_split(request.split, SPLITS, f"npz file {request.data_dir}")
    x, y = read_arrays(request.data_dir)
    check_labels(y, num_classes or np.iinfo(np.int32).max, request.data_dir, "fix the labels or pass the right num_classes")
    indices = split_indices(len(x), validation_fraction, split_seed)[split]
    if not len(indices):
        raise DataError(f"{request.data_dir}: the '{split}' split is empty (validation_fraction={validation_fraction})")
    return in_memory_source(x[indices], y[indices], request.data_dir)
