"""What every data source shares: the request and source records, image
decoding, split-name resolution and the checks that turn bad input into a
one-line `DataError`.
"""

import dataclasses
import os
from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf

from mobilenets.errors import DataError


@dataclasses.dataclass(frozen=True)
class Request:
    """The arguments of `make_dataset` a loader needs."""

    name: str
    split: str
    data_dir: Optional[str]
    training: bool
    seed: int
    image_size: Optional[Tuple[int, int]]


@dataclasses.dataclass
class Source:
    """What a loader hands to the pipeline.

    `examples` yields unbatched `(record, label)` pairs, label int32. A record
    is a uint8 (H, W, 3) image, or something small (JPEG/PNG bytes, a file
    path) that `decode` turns into one after shuffling, so that the shuffle
    buffer stays small.
    """

    examples: tf.data.Dataset
    num_examples: Optional[int]
    native_size: Optional[Tuple[int, int]] = None  # (height, width) shared by every image
    decode: Optional[Callable] = None  # record -> uint8 (H, W, 3) image
    cache: bool = False  # keep the records in memory after the first pass
    full_shuffle: bool = False  # records are small: shuffle the whole split at once
    skip_errors: bool = False  # drop records whose image does not decode (counted by the loader)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a trainer needs before it builds a model and a schedule."""

    name: str
    num_classes: Optional[int]
    image_size: Tuple[int, int]  # default (height, width) of the pipeline's output
    splits: dict  # split name -> number of examples, None when unknown
    default_augment: str
    eval_crop_fraction: float


def require_path(path, what, hint):
    """Returns `path` as a str, or raises DataError when it does not exist."""
    if path is None:
        raise DataError(f"{what}: no data_dir given; {hint}")
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise DataError(f"{what} {path} does not exist; {hint}")
    return path


def resolve_split(split, aliases, where):
    """Maps a user's split name to the stored one, e.g. 'val' -> 'validation'."""
    key = str(split).lower()
    if key not in aliases:
        raise DataError(f"split '{split}' is not available for {where}; choose one of {sorted(set(aliases))}")
    return aliases[key]


def check_labels(labels, num_classes, where, hint):
    """Raises DataError naming `where` when a label is outside 0..num_classes-1."""
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{where}: label {int(labels[i])} of example {i} is outside 0..{num_classes - 1} "
            f"({bad.size} such labels); {hint}"
        )


def in_memory_source(images, labels, where):
    """A Source over uint8 (N, H, W, 3) images and integer labels held in memory."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(labels) != len(images):
        raise DataError(f"{where}: {len(images)} images but {len(labels)} labels; the file is inconsistent, recreate it")
    examples = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, dtype=np.int32)))
    return Source(examples, len(images), native_size=tuple(images.shape[1:3]), full_shuffle=True)


def decode_image(data):
    """JPEG, PNG, BMP, GIF (first frame) or WebP bytes (format sniffed, not from the file name) -> uint8 (H, W, 3)."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def read_image(path):
    """An image file (see decode_image) -> uint8 (H, W, 3)."""
    return decode_image(tf.io.read_file(path))
