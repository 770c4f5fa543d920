"""tensorflow-datasets as a source: a prepared tfds directory is read offline;
preparing one (download, or ImageNet's manual archives) is attempted only when
allowed, and any failure becomes one DataError that says how to prepare the
data on a machine with network.
"""

import os

import tensorflow as tf

from mobilenets.data.common import Source, decode_image, one_line
from mobilenets.errors import DataError


def tfds_source(tfds_name, split, data_dir, *, training, seed, download, how_to, manual_dir=None, encoded=False):
    """A Source reading split `split` of tfds dataset `tfds_name`.

    `encoded`: keep the images as their stored JPEG/PNG bytes (decoded later by
    the pipeline, after shuffling); otherwise tfds decodes them and the split
    is cached in memory (small datasets such as CIFAR).
    `how_to`: the end of the error message, how to get the data without network.
    """
    import tensorflow_datasets as tfds  # imported only when tfds is the source

    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        if not (download or manual_dir):
            raise DataError(f"no prepared tfds '{tfds_name}' in {builder.data_dir}; {how_to}")
        config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:  # network, checksum, missing manual archive...: all end the same way
            raise DataError(
                f"tensorflow-datasets could not prepare '{tfds_name}' in {builder.data_dir} "
                f"({type(e).__name__}: {one_line(e)[:200]}); {how_to}"
            ) from e
    try:
        num_examples = builder.info.splits[split].num_examples
    except (KeyError, ValueError) as e:
        raise DataError(
            f"split '{split}' is not in tfds '{tfds_name}' at {builder.data_dir}; "
            f"choose one of {sorted(builder.info.splits)}"
        ) from e
    decoders = {"image": tfds.decode.SkipDecoding()} if encoded else None
    examples = builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=training and encoded,
        decoders=decoders,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    examples = examples.map(lambda image, label: (image, tf.cast(label, tf.int32)))
    native_size = None if encoded else tuple(builder.info.features["image"].shape[:2])
    return Source(
        examples,
        num_examples,
        native_size=native_size,
        decode=decode_image if encoded else None,
        cache=not encoded,
        full_shuffle=not encoded,
    )
