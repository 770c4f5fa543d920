"""ImageNet (ILSVRC2012, 1000 classes) from whichever copy the user has.

`data_dir` may hold, checked in this order:
  - TFRecord shards in the TF Model Garden layout: `train-00000-of-01024`,
    `validation-00000-of-00128`, features `image/encoded` (JPEG bytes) and
    `image/class/label` (int64, 1-based there: `label_offset=1` maps 1..1000
    to 0..999; pass 0 for 0-based shards);
  - a class-per-folder tree `ROOT/train/<wnid>/*.JPEG`, `ROOT/val(idation)/<wnid>/...`;
  - a tfds data directory with `imagenet2012` prepared, or the official
    ILSVRC2012_img_{train,val}.tar archives (there or in `manual_dir`), which
    tfds then prepares (once; hours).
"""

import glob
import os
import re
import warnings

import tensorflow as tf

from mobilenets.data import folder, tfds_source
from mobilenets.data.common import DatasetInfo, Source, decode_image, require_path, resolve_split
from mobilenets.errors import DataError, first_line

NUM_CLASSES = 1000
IMAGE_SIZE = (224, 224)
DEFAULT_AUGMENT = "inception"
EVAL_CROP_FRACTION = 0.875
SPLIT_EXAMPLES = {"train": 1281167, "validation": 50000}
SPLITS = {"train": "train", "validation": "validation", "val": "validation"}
IMAGE_FEATURE = "image/encoded"
LABEL_FEATURE = "image/class/label"
MANUAL_ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
SCAN_LIMIT_BYTES = 1 << 30  # shards up to this total size get every label checked up front
SHUFFLE_CYCLE = 16  # shards read at once in training
READ_BUFFER_BYTES = 8 << 20
HOW_TO = (
    "point data_dir at TF Model Garden TFRecord shards (train-00000-of-01024, ...), at a class-per-folder tree "
    "(ROOT/train/<wnid>/*.JPEG) or at a tfds data dir with imagenet2012 prepared; or pass manual_dir=DIR holding "
    f"{' and '.join(MANUAL_ARCHIVES)} from image-net.org to let tensorflow-datasets prepare it"
)


def info(name, data_dir=None):
    """DatasetInfo with the split sizes of the copy in `data_dir`: records counted shard by shard
    (record headers only), files of a folder tree; the official sizes for tfds."""
    splits = dict(SPLIT_EXAMPLES)
    path = None if data_dir is None else require_path(data_dir, "imagenet2012 data_dir", HOW_TO)
    if path and (shard_files(path, "train") or shard_files(path, "validation")):
        splits = {split: sum(count_records(f) for f in shard_files(path, split)) for split in SPLIT_EXAMPLES}
    elif path and (folder.split_dir(path, "train") or folder.split_dir(path, "validation")):
        counted = folder.info("folder", path).splits
        splits = {split: counted.get(split, 0) for split in SPLIT_EXAMPLES}
    elif path:
        tfds_source.refuse_photo_folder(path)
    return DatasetInfo(name, NUM_CLASSES, IMAGE_SIZE, splits, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)


def count_records(path):
    """Records in one TFRecord file, from their length headers (each record is a uint64 length, a
    uint32 CRC, the data and a uint32 CRC); DataError when the file ends inside a record."""
    count, size = 0, os.path.getsize(path)
    with open(path, "rb") as f:
        position = 0
        while position < size:
            header = f.read(12)
            length = int.from_bytes(header[:8], "little") if len(header) == 12 else size
            position += 12 + length + 4
            if position > size:
                raise DataError(f"{path} is truncated inside record {count + 1}; copy or regenerate it")
            f.seek(position)
            count += 1
    return count


def load(request, *, label_offset=1, manual_dir=None, validate="auto"):
    """Source over one ImageNet split.

    label_offset: subtracted from TFRecord labels (Model Garden shards are 1-based).
    manual_dir: folder with the ILSVRC2012 tar archives, for tfds to prepare.
    validate: image check of a folder tree (see `folder.scan_folder`).
    """
    split = resolve_split(request.split, SPLITS, "imagenet2012")
    if request.data_dir is None:
        return _from_tfds(request, split, None, manual_dir)
    path = require_path(request.data_dir, "imagenet2012 data_dir", HOW_TO)
    if shard_files(path, "train") or shard_files(path, "validation"):
        return tfrecord_source(path, split, request.training, request.seed, label_offset)
    if folder.split_dir(path, "train") or folder.split_dir(path, "validation"):
        num_classes = len(folder.class_names(path))
        if num_classes != NUM_CLASSES:
            raise DataError(
                f"{path} has {num_classes} class folders, ImageNet has {NUM_CLASSES}; "
                f"for a subset or a custom dataset use make_dataset('folder', ...)"
            )
        return folder.folder_source(folder.scan_folder(path, split, validate))
    manual_dir = manual_dir or next((d for d in (path, os.path.join(path, "downloads", "manual"))
                                     if os.path.isfile(os.path.join(d, MANUAL_ARCHIVES[1]))), None)
    return _from_tfds(request, split, path, manual_dir)


def _from_tfds(request, split, data_dir, manual_dir):
    return tfds_source.tfds_source(
        "imagenet2012", split, data_dir, training=request.training, seed=request.seed,
        download=False, how_to=HOW_TO, manual_dir=manual_dir, encoded=True,
    )


def shard_files(path, split):
    """Sorted `split-NNNNN-of-MMMMM` shards in `path`."""
    files = sorted(glob.glob(os.path.join(glob.escape(path), f"{split}-*-of-*")))
    return [f for f in files if re.fullmatch(rf"{split}-\d+-of-\d+(\.\w+)?", os.path.basename(f))]


def _parse(records, label_offset):
    features = tf.io.parse_example(
        records,
        {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string), LABEL_FEATURE: tf.io.FixedLenFeature([], tf.int64)},
    )
    return features[IMAGE_FEATURE], features[LABEL_FEATURE] - label_offset


def _label_hint(label_offset):
    return f"label_offset={label_offset} (Model Garden shards are 1-based: 1; 0-based shards: 0)"


def scan_shards(files, label_offset):
    """Reads every label of `files`: their count, or DataError naming a bad shard."""
    count = 0
    for shard in files:
        labels = tf.data.TFRecordDataset(shard).batch(1024).map(lambda r: _parse(r, label_offset)[1])
        try:
            for batch in labels.as_numpy_iterator():
                bad = batch[(batch < 0) | (batch >= NUM_CLASSES)]
                if bad.size:
                    raise DataError(
                        f"{shard}: label {int(bad[0]) + label_offset} maps outside 0..{NUM_CLASSES - 1} "
                        f"with {_label_hint(label_offset)}; pass the right label_offset"
                    )
                count += len(batch)
        except tf.errors.OpError as e:
            raise DataError(
                f"{shard} is truncated, corrupt or lacks the {IMAGE_FEATURE}/{LABEL_FEATURE} features "
                f"({type(e).__name__}: {first_line(e, 100)}); copy or regenerate it"
            ) from e
    return count


def tfrecord_source(path, split, training, seed, label_offset):
    """Source over Model Garden shards; labels are checked up front when the shards are small enough."""
    files = shard_files(path, split)
    if not files:
        raise DataError(f"{path} has no '{split}-*-of-*' TFRecord shards; {HOW_TO}")
    expected = int(re.search(r"-of-(\d+)", os.path.basename(files[0])).group(1))
    if len(files) != expected:
        warnings.warn(f"{path}: found {len(files)} of {expected} '{split}' shards; the split is incomplete")
    small = sum(os.path.getsize(f) for f in files) <= SCAN_LIMIT_BYTES
    counted = scan_shards(files if small else files[:1], label_offset)
    shards = tf.data.Dataset.from_tensor_slices(files)
    if training:
        shards = shards.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    records = shards.interleave(
        lambda shard: tf.data.TFRecordDataset(shard, buffer_size=READ_BUFFER_BYTES).map(lambda record: (record, shard)),
        cycle_length=min(len(files), SHUFFLE_CYCLE) if training else 1,  # evaluation: file order
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )

    def parse_checked(record, shard):
        image, label = _parse(record, label_offset)
        in_range = tf.logical_and(label >= 0, label < NUM_CLASSES)
        check = tf.debugging.Assert(in_range, ["label out of range in", shard, "with", _label_hint(label_offset)])
        with tf.control_dependencies([check]):
            return image, tf.cast(label, tf.int32)

    examples = records.map(parse_checked, num_parallel_calls=tf.data.AUTOTUNE)
    return Source(examples, counted if small else None, decode=decode_image)
