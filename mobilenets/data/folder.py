"""A class-per-folder tree of JPEG/PNG files: `root/<split>/<class_name>/*.jpg`,
or `root/<class_name>/*.jpg` (one folder per class, no split folders: the train
split, validated on a held-out fraction, `validation_fraction`).

Class names sorted alphabetically give the label ids, taken from the train
folder so that every split agrees. Works for any custom dataset, and for
ImageNet arranged this way. Unreadable images are skipped, counted and
reported in one warning rather than stopping a training run.
"""

import dataclasses
import os
import warnings

import numpy as np
import tensorflow as tf

from mobilenets.data.common import IMAGE_EXTENSIONS, DatasetInfo, Source, read_image, require_path, resolve_split
from mobilenets.errors import ConfigError, DataError

DEFAULT_IMAGE_SIZE = (224, 224)
DEFAULT_AUGMENT = "inception"
EVAL_CROP_FRACTION = 0.875
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
FULL_CHECK_LIMIT = 10_000  # validate='auto' decodes every image up to this many files, else checks headers
MAGIC_BYTES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
HOW_TO = ("arrange the images as ROOT/<class_name>/*.jpg or ROOT/<split>/<class_name>/*.jpg (or .png) and pass "
          "data_dir=ROOT")


class SkippedImagesWarning(UserWarning):
    """Some images of a folder tree could not be read and were left out."""


@dataclasses.dataclass
class FolderScan:
    paths: list
    labels: np.ndarray
    class_names: list
    skipped: list  # unreadable files left out


def split_dir(root, split):
    """The folder of `split` under `root` ('validation' may be spelt 'val'), or None."""
    for folder in SPLIT_FOLDERS[split]:
        if os.path.isdir(os.path.join(root, folder)):
            return os.path.join(root, folder)
    return None


def is_flat(root):
    """True for ROOT/<class_name>/*.jpg: no split folders, only class folders."""
    return not any(split_dir(root, split) for split in SPLIT_FOLDERS) and any(
        e.is_dir() for e in os.scandir(root))


def _split_dir(root, split):
    """split_dir, where a flat tree's root is its train split."""
    return root if split == "train" and is_flat(root) else split_dir(root, split)


def class_names(root):
    """Sorted class folder names, from the train split when there is one, so that every split agrees."""
    directory = next(filter(None, (_split_dir(root, split) for split in SPLIT_FOLDERS)), None)
    if directory is None:
        raise DataError(f"{root} has no train, validation or test folder and no class folders; {HOW_TO}")
    names = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    if not names:
        raise DataError(f"{directory} has no class sub-folders; {HOW_TO}")
    return names


def scan_folder(root, split, validate="auto"):
    """Lists a split's images with their labels; drops (and warns about) unreadable ones.

    validate: 'full' decodes every image up front; 'header' only checks each
    file starts like a JPEG/PNG; 'none' checks nothing; 'auto' is 'full' up to
    FULL_CHECK_LIMIT files, else 'header'. Files that pass a light check yet
    fail to decode later are dropped by the pipeline without being counted.
    """
    checks = {"full": _decodes, "header": _has_image_header, "none": lambda paths: np.ones(len(paths), bool)}
    if validate not in list(checks) + ["auto"]:
        raise ConfigError(f"validate must be one of {list(checks) + ['auto']}, got {validate!r}")
    root = require_path(root, "image folder", HOW_TO)
    split = resolve_split(split, SPLITS, f"image folder {root}")
    directory = _split_dir(root, split)
    if directory is None:
        raise DataError(f"{root} has no '{split}' folder (looked for {'/'.join(SPLIT_FOLDERS[split])}); {HOW_TO}")
    names = class_names(root)
    paths, labels = [], []
    for entry in sorted(e.name for e in os.scandir(directory) if e.is_dir()):
        if entry not in names:
            raise DataError(f"{os.path.join(directory, entry)} is a class the train split does not have; {HOW_TO}")
        label = names.index(entry)
        for folder, subfolders, files in os.walk(os.path.join(directory, entry)):
            subfolders.sort()
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(folder, f))
                    labels.append(label)
    if not paths:
        raise DataError(f"{directory} has no .jpg/.jpeg/.png images in its class folders; {HOW_TO}")
    if validate == "auto":
        validate = "full" if len(paths) <= FULL_CHECK_LIMIT else "header"
    ok = checks[validate](paths)
    skipped = [p for p, good in zip(paths, ok) if not good]
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} of {len(paths)} images in {directory} that cannot be decoded "
            f"(first: {skipped[0]}); delete or replace them",
            SkippedImagesWarning,
            stacklevel=2,
        )
    if len(skipped) == len(paths):
        raise DataError(f"none of the {len(paths)} images in {directory} can be decoded (first: {paths[0]}); {HOW_TO}")
    kept = np.flatnonzero(ok)
    return FolderScan([paths[i] for i in kept], np.asarray(labels, np.int32)[kept], names, skipped)


def _has_image_header(paths):
    def check(path):
        try:
            with open(path, "rb") as f:
                return f.read(8).startswith(MAGIC_BYTES)
        except OSError:
            return False

    return np.array([check(p) for p in paths], bool)


def _decodes(paths):
    """Whether each file decodes, checked in parallel by tf.data."""
    indexed = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    decoded = indexed.map(
        lambda i, p: (i, tf.shape(read_image(p))[0]), num_parallel_calls=tf.data.AUTOTUNE
    ).ignore_errors()
    ok = np.zeros(len(paths), bool)
    for indices, _ in decoded.batch(4096).as_numpy_iterator():
        ok[indices] = True
    return ok


def _count_images(directory):
    return sum(f.lower().endswith(IMAGE_EXTENSIONS) for _, _, files in os.walk(directory) for f in files)


def held_out(labels, validation_fraction, split_seed):
    """Boolean mask of the examples held out for validation: round(n * fraction) of each class's n,
    chosen by `split_seed` alone (every run validates on the same images)."""
    if not 0.0 <= validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    labels = np.asarray(labels)
    mask, rng = np.zeros(len(labels), bool), np.random.default_rng(split_seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        mask[rng.permutation(members)[: int(round(len(members) * validation_fraction))]] = True
    return mask


def info(name, data_dir=None, *, validation_fraction=0.0, split_seed=0):
    if data_dir is None:
        return DatasetInfo(name, None, DEFAULT_IMAGE_SIZE, {}, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)
    root = require_path(data_dir, "image folder", HOW_TO)
    splits = {split: _count_images(d) for split in SPLIT_FOLDERS if (d := _split_dir(root, split))}
    names = class_names(root)
    if validation_fraction and "train" in splits:
        train = _split_dir(root, "train")
        per_class = [_count_images(os.path.join(train, n)) for n in names if os.path.isdir(os.path.join(train, n))]
        splits["validation"] = sum(int(round(n * validation_fraction)) for n in per_class)
        splits["train"] -= splits["validation"]
    return DatasetInfo(name, len(names), DEFAULT_IMAGE_SIZE, splits, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)


def load(request, *, validate="auto", validation_fraction=0.0, split_seed=0):
    """Source over the images of one split (see `scan_folder` for `validate`).

    validation_fraction > 0: 'validation' is that fraction of each class of the train folder
    (chosen by `split_seed`), and 'train' the rest.
    """
    split = resolve_split(request.split, SPLITS, f"image folder {request.data_dir}")
    if not validation_fraction or split == "test":
        return folder_source(scan_folder(request.data_dir, split, validate))
    scan = scan_folder(request.data_dir, "train", validate)
    keep = held_out(scan.labels, validation_fraction, split_seed) == (split == "validation")
    if not keep.any():
        raise DataError(f"{request.data_dir}: the '{split}' split is empty (validation_fraction={validation_fraction})")
    return folder_source(FolderScan([p for p, k in zip(scan.paths, keep) if k], scan.labels[keep], scan.class_names,
                                    scan.skipped))


def folder_source(scan):
    """Source whose records are file paths, read and decoded after shuffling."""
    examples = tf.data.Dataset.from_tensor_slices((scan.paths, scan.labels))
    return Source(examples, len(scan.paths), decode=read_image, full_shuffle=True, skip_errors=True)
