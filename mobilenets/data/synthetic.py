"""Synthetic images of any size and class count, for smoke runs.

Learnable on purpose: each class has its own mean colour (the same in every
split), and each image is that colour plus Gaussian noise, so a few training
steps already lower the loss. Example i of a split is a pure function of
(split name, i): the data never depends on the shuffling seed.
"""

import zlib

import numpy as np
import tensorflow as tf

from mobilenets.data.common import DatasetInfo, Source
from mobilenets.errors import DataError

DEFAULT_IMAGE_SIZE = (32, 32)
DEFAULT_NUM_CLASSES = 10
DEFAULT_NUM_EXAMPLES = {"train": 1024}  # any other split: 256
OTHER_SPLIT_EXAMPLES = 256
DEFAULT_AUGMENT = "none"
EVAL_CROP_FRACTION = 1.0
NOISE_STDDEV = 40.0
COLOR_SEED = 20180113


def _num_examples(split, num_examples):
    return num_examples or DEFAULT_NUM_EXAMPLES.get(split, OTHER_SPLIT_EXAMPLES)


def info(name, data_dir=None, *, num_classes=DEFAULT_NUM_CLASSES, num_examples=None):
    splits = {s: _num_examples(s, num_examples) for s in ("train", "validation")}
    return DatasetInfo(name, num_classes, DEFAULT_IMAGE_SIZE, splits, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)


def load(request, *, num_classes=DEFAULT_NUM_CLASSES, num_examples=None):
    """Source of `num_examples` images (default 1024 for 'train', 256 otherwise)."""
    if num_classes < 1:
        raise DataError(f"synthetic data needs num_classes >= 1, got {num_classes}")
    height, width = request.image_size or DEFAULT_IMAGE_SIZE
    count = _num_examples(request.split, num_examples)
    split_id = zlib.crc32(request.split.encode()) & 0x7FFFFFFF
    colors = tf.constant(np.random.default_rng(COLOR_SEED).uniform(32, 224, (num_classes, 3)), tf.float32)

    def example(index):
        label = tf.cast(index % num_classes, tf.int32)
        noise = tf.random.stateless_normal([height, width, 3], seed=tf.stack([tf.cast(split_id, tf.int64), index]))
        image = tf.clip_by_value(tf.round(colors[label] + NOISE_STDDEV * noise), 0.0, 255.0)
        return tf.cast(image, tf.uint8), label

    examples = tf.data.Dataset.range(count).map(example, num_parallel_calls=tf.data.AUTOTUNE)
    return Source(examples, count, native_size=(height, width), full_shuffle=True)
