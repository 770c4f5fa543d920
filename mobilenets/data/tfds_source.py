"""tensorflow-datasets as a source: a prepared tfds directory is read offline;
preparing one (download, or ImageNet's manual archives) is attempted only when
allowed, and any failure becomes one DataError that says how to prepare the
data on a machine with network.

Before a download, `check_downloadable` makes sure it can only succeed or fail
having written nothing: the data_dir must hold nothing but what tfds itself
writes (a folder of photos or anything else of the user's is refused), and the
download host must answer one short probe (offline fails in seconds, not after
minutes of retries, and leaves no `downloads/` or ~/tensorflow_datasets behind).
"""

import os
import urllib.parse

import tensorflow as tf

from mobilenets.data.common import Source, decode_image
from mobilenets.data.layout import foreign_entries, photo_class_folders
from mobilenets.errors import DataError, first_line
from mobilenets.network import PROBE_TIMEOUT, can_connect

def can_reach(url, timeout=PROBE_TIMEOUT):
    """Whether tfds could download `url` (`mobilenets.network.can_connect`); False without trying when
    MOBILENETS_OFFLINE is set (an air-gapped machine; the tests)."""
    return not os.environ.get("MOBILENETS_OFFLINE") and can_connect(url, timeout)


def refuse_photo_folder(data_dir):
    """DataError when `data_dir` is a tree of class folders of images, meant for --dataset folder."""
    classes = photo_class_folders(data_dir)
    if classes:
        raise DataError(f"{data_dir} looks like a folder of photos ({classes} class folder{'s' * (classes > 1)}): "
                        f"add --dataset folder")


def refuse_foreign_dir(tfds_name, data_dir, how_to):
    """DataError when `data_dir` holds anything tensorflow-datasets did not write (it would put its
    download and dataset beside the user's files); one that says so for a folder of photos."""
    refuse_photo_folder(data_dir)
    foreign = foreign_entries(data_dir) if os.path.isdir(data_dir) else [os.path.basename(data_dir)]
    if foreign:
        raise DataError(f"{data_dir} holds {', '.join(foreign[:3])}{', ...' * (len(foreign) > 3)}, not a "
                        f"{tfds_name} copy (tensorflow-datasets would write beside it); {how_to}")


def is_prepared(builder):
    """builder.is_prepared(), without the absl warning tfds logs about an unprepared variant folder ('has no
    dataset_info.json'): the error this module raises says what is missing and what to do."""
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        return builder.is_prepared()
    finally:
        absl.setLevel(level)


def check_downloadable(tfds_name, data_dir, *, url, how_to):
    """The tfds builder of `tfds_name` in `data_dir` (tfds' default directory when None), once it is
    prepared or could be downloaded there: DataError otherwise, nothing written (module docstring)."""
    import tensorflow_datasets as tfds  # imported only when tfds is the source

    if data_dir is not None:
        refuse_foreign_dir(tfds_name, data_dir, how_to)
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not is_prepared(builder) and not can_reach(url):
        host = urllib.parse.urlsplit(url).hostname
        raise DataError(f"cannot reach {host} to download {tfds_name} (offline?) and {builder.data_dir} holds no "
                        f"prepared copy; {how_to}")
    return builder


def tfds_source(tfds_name, split, data_dir, *, training, seed, download, how_to, manual_dir=None, encoded=False,
                url=None):
    """A Source reading split `split` of tfds dataset `tfds_name`.

    `encoded`: keep the images as their stored JPEG/PNG bytes (decoded later by
    the pipeline, after shuffling); otherwise tfds decodes them and the split
    is cached in memory (small datasets such as CIFAR).
    `how_to`: the end of the error message, how to get the data without network.
    `url`: a file tfds downloads, checked (check_downloadable) before a download.
    """
    import tensorflow_datasets as tfds  # imported only when tfds is the source

    if download and url:
        builder = check_downloadable(tfds_name, data_dir, url=url, how_to=how_to)
    else:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not is_prepared(builder):
        if not (download or manual_dir):
            raise DataError(f"no prepared tfds '{tfds_name}' in {builder.data_dir}; {how_to}")
        config = tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir) if manual_dir else None)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:  # network, checksum, missing manual archive...: all end the same way
            raise DataError(
                f"tensorflow-datasets could not prepare '{tfds_name}' in {builder.data_dir} "
                f"({type(e).__name__}: {first_line(e, 200)}); {how_to}"
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
