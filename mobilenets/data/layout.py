"""What a data directory holds, told from file names alone (no TensorFlow, so that resolving a
config stays fast): image files, class-per-folder trees, and what tensorflow-datasets writes.
"""

import os
import re

# What tf.io.decode_image decodes (TF 2.21): JPEG, PNG, BMP, GIF (its first frame) and WebP.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Photo formats it does not decode: counted in a warning rather than ignored silently.
UNDECODABLE_EXTENSIONS = (".heic", ".heif", ".tif", ".tiff", ".avif")
SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}
TFDS_DOWNLOADS = "downloads"
_TFDS_VERSION = re.compile(r"(incomplete\.[0-9a-fA-F]{32}\.)?\d+\.\d+\.\d+")  # 3.0.2, or being written


def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def visible_entries(directory):
    """The entries of `directory` a user made: not hidden (.DS_Store, .ipynb_checkpoints, ...)."""
    return [e for e in os.scandir(directory) if not e.name.startswith(".")]


def subfolders(directory):
    """Sorted names of the visible sub-folders of `directory`."""
    return sorted(e.name for e in visible_entries(directory) if e.is_dir())


def split_dir(root, split):
    """The folder of `split` under `root` ('validation' may be spelt 'val'), or None."""
    for folder in SPLIT_FOLDERS[split]:
        if os.path.isdir(os.path.join(root, folder)):
            return os.path.join(root, folder)
    return None


def is_flat(root):
    """True for ROOT/<class_name>/*.jpg: no split folders, only class folders."""
    return not any(split_dir(root, split) for split in SPLIT_FOLDERS) and bool(subfolders(root))


def holds_images(directory):
    """True when `directory` or a folder below it holds an image file."""
    return any(is_image(f) for _, _, files in os.walk(directory) for f in files)


def class_image_counts(root):
    """{class name: image files} of the training classes of `root` (ROOT/<class>/ or ROOT/train/<class>/),
    counted by extension as the folder source lists them (hidden folders are not classes)."""
    top = root if is_flat(root) else split_dir(root, "train")
    if top is None:
        return {}
    counts = {}
    for name in subfolders(top):
        counts[name] = 0
        for where, below, files in os.walk(os.path.join(top, name)):
            below[:] = [d for d in below if not d.startswith(".")]
            counts[name] += sum(map(is_image, files))
    return counts


def photo_class_folders(root):
    """How many class folders of images `root` holds (ROOT/<class>/ or ROOT/<split>/<class>/), 0 if none."""
    if not os.path.isdir(root):
        return 0
    top = root if is_flat(root) else next(filter(None, (split_dir(root, s) for s in SPLIT_FOLDERS)), None)
    if top is None:
        return 0
    return sum(holds_images(os.path.join(top, name)) for name in subfolders(top))


def foreign_entries(directory):
    """The entries of `directory` that tensorflow-datasets did not write there: anything but its
    `downloads` folder and dataset folders of version folders (cifar100/3.0.2/), and empty folders."""
    def written_by_tfds(entry):
        if not entry.is_dir():
            return False
        if entry.name == TFDS_DOWNLOADS:
            return True
        versions = visible_entries(entry.path)
        return all(v.is_dir() and _TFDS_VERSION.fullmatch(v.name) for v in versions)

    return sorted(e.name for e in visible_entries(directory) if not written_by_tfds(e))
