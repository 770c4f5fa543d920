"""A class-per-folder tree of photos: `root/<split>/<class_name>/*.jpg`,
or `root/<class_name>/*.jpg` (one folder per class, no split folders: the train
split, validated on a held-out fraction, `validation_fraction`).

Class names sorted alphabetically give the label ids, taken from the train
folder so that every split agrees. Works for any custom dataset, and for
ImageNet arranged this way. JPEG, PNG, BMP, GIF (first frame) and WebP files
are read (what tf.io.decode_image decodes); unreadable images, and photos in
formats TensorFlow cannot decode (HEIC, TIFF, AVIF), are skipped, counted and
reported in one warning rather than stopping a training run. A class folder
without images keeps its class id (the ids stay those of the full tree) and is
named in a warning. Hidden folders (.ipynb_checkpoints, ...) are not classes.
"""

import collections
import dataclasses
import os
import warnings

import numpy as np
import tensorflow as tf

from mobilenets.quiet import held_stderr
from mobilenets.data.common import DatasetInfo, Source, read_image, require_path, resolve_split
from mobilenets.data.layout import SPLIT_FOLDERS, UNDECODABLE_EXTENSIONS, is_flat, is_image, split_dir, subfolders
from mobilenets.errors import ConfigError, DataError

DEFAULT_IMAGE_SIZE = (224, 224)
DEFAULT_AUGMENT = "inception"
EVAL_CROP_FRACTION = 0.875
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
FULL_CHECK_LIMIT = 10_000  # validate='auto' decodes every image up to this many files, else checks headers
MAGIC_BYTES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a")  # JPEG, PNG, BMP, GIF
HOW_TO = ("arrange the images as ROOT/<class_name>/*.jpg or ROOT/<split>/<class_name>/*.jpg (.jpg, .png, .bmp, "
          ".gif or .webp) and pass data_dir=ROOT")


class SkippedImagesWarning(UserWarning):
    """Some images of a folder tree could not be read and were left out."""


@dataclasses.dataclass
class FolderScan:
    paths: list
    labels: np.ndarray
    class_names: list
    skipped: list  # unreadable files left out


def _split_dir(root, split):
    """split_dir, where a flat tree's root is its train split."""
    return root if split == "train" and is_flat(root) else split_dir(root, split)


def class_names(root):
    """Sorted class folder names, from the train split when there is one, so that every split agrees."""
    directory = next(filter(None, (_split_dir(root, split) for split in SPLIT_FOLDERS)), None)
    if directory is None:
        raise DataError(f"{root} has no train, validation or test folder and no class folders; {HOW_TO}")
    names = subfolders(directory)
    if not names:
        raise DataError(f"{directory} has no class sub-folders; {HOW_TO}")
    return names


def scan_folder(root, split, validate="auto"):
    """Lists a split's images with their labels; drops (and warns about) unreadable ones.

    validate: 'full' decodes every image up front; 'header' only checks each
    file starts like a JPEG/PNG/BMP/GIF/WebP; 'none' checks nothing; 'auto' is 'full' up to
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
    paths, labels, unsupported, empty = [], [], collections.Counter(), []
    for entry in subfolders(directory):
        if entry not in names:
            raise DataError(f"{os.path.join(directory, entry)} is a class the train split does not have; {HOW_TO}")
        found = _class_files(os.path.join(directory, entry), unsupported)
        paths += found
        labels += [names.index(entry)] * len(found)
        empty += [] if found else [entry]
    if not paths:
        raise DataError(f"{directory} has no .jpg/.png/.bmp/.gif/.webp images in its class folders"
                        f"{_formats(unsupported)}; {HOW_TO}")
    if empty:
        warnings.warn(_empty_classes_text(directory, empty, len(names)), SkippedImagesWarning, stacklevel=2)
    if validate == "auto":
        validate = "full" if len(paths) <= FULL_CHECK_LIMIT else "header"
    ok = checks[validate](paths)
    skipped = [p for p, good in zip(paths, ok) if not good]
    if skipped or unsupported:
        warnings.warn(_skipped_text(directory, skipped, len(paths), unsupported), SkippedImagesWarning, stacklevel=2)
    if len(skipped) == len(paths):
        raise DataError(f"none of the {len(paths)} images in {directory} can be decoded (first: {paths[0]}); {HOW_TO}")
    kept = np.flatnonzero(ok)
    return FolderScan([paths[i] for i in kept], np.asarray(labels, np.int32)[kept], names, skipped)


def _class_files(folder, unsupported=None):
    """The image files under one class folder, sorted; counts those TensorFlow cannot decode by extension
    in the Counter `unsupported`."""
    unsupported = collections.Counter() if unsupported is None else unsupported
    found = []
    for where, below, files in os.walk(folder):
        below[:] = sorted(d for d in below if not d.startswith("."))
        for f in sorted(files):
            if is_image(f):
                found.append(os.path.join(where, f))
            elif f.lower().endswith(UNDECODABLE_EXTENSIONS):
                unsupported[os.path.splitext(f)[1].lower()] += 1
    return found


def _empty_classes_text(directory, empty, num_classes):
    """The one line of SkippedImagesWarning about class folders without images (kept as classes)."""
    listed = ", ".join(empty[:5]) + (f", ... ({len(empty)} of {num_classes})" if len(empty) > 5 else "")
    return (f"{directory}: class folders without images: {listed}; each keeps its class id (ids follow the sorted "
            f"folder names) but the model never sees an example of it: add images or delete the folder")


def _counted(unsupported):
    """'3 .heic, 1 .tiff files' of the counted extensions."""
    counts = ", ".join(f"{n} {ext}" for ext, n in sorted(unsupported.items()))
    return f"{counts} file{'s' * (sum(unsupported.values()) > 1)}"


def _formats(unsupported):
    """' (only 3 .heic files, which TensorFlow cannot decode)' for the counted files, '' when none."""
    return f" (only {_counted(unsupported)}, which TensorFlow cannot decode)" if unsupported else ""


def _skipped_text(directory, skipped, total, unsupported):
    """The one line of SkippedImagesWarning: broken images and undecodable formats, counted."""
    parts = []
    if skipped:
        parts.append(f"skipped {len(skipped)} of {total} images in {directory} that cannot be decoded "
                     f"(first: {skipped[0]}); delete or replace them")
    if unsupported:
        parts.append(f"skipped {_counted(unsupported)} in {directory}, a format TensorFlow cannot decode; convert "
                     f"them to JPEG or PNG")
    return "; ".join(parts)


def _has_image_header(paths):
    def check(path):
        try:
            with open(path, "rb") as f:
                head = f.read(12)
        except OSError:
            return False
        return head.startswith(MAGIC_BYTES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")

    return np.array([check(p) for p in paths], bool)


def _decodes(paths):
    """Whether each file decodes, checked in parallel by tf.data. libjpeg prints its complaint about
    a broken file ("Input file read error") straight to stderr: held back, the warning counts them."""
    indexed = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), paths))
    decoded = indexed.map(
        lambda i, p: (i, tf.shape(read_image(p))[0]), num_parallel_calls=tf.data.AUTOTUNE
    ).ignore_errors()
    ok = np.zeros(len(paths), bool)
    with held_stderr():
        for indices, _ in decoded.batch(4096).as_numpy_iterator():
            ok[indices] = True
    return ok


def _count_images(directory):
    """Image files in the class folders of a split folder, as scan_folder finds them."""
    return sum(len(_class_files(os.path.join(directory, name))) for name in subfolders(directory))


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
        per_class = [len(_class_files(os.path.join(train, n))) for n in names if os.path.isdir(os.path.join(train, n))]
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
