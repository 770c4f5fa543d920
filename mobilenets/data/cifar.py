"""CIFAR-10 and CIFAR-100, from the official archives a user already has or
from tensorflow-datasets.

`data_dir` may be any of:
  - an official archive: cifar-10-python.tar.gz, cifar-10-binary.tar.gz,
    cifar-100-python.tar.gz, cifar-100-binary.tar.gz (read without extracting);
  - an extracted folder: cifar-10-batches-py/, cifar-10-batches-bin/,
    cifar-100-python/, cifar-100-binary/, or a folder containing one of them
    or one of the archives; a folder missing some batches (an interrupted
    download, a subset) gives the batches it holds, with a warning naming the
    missing ones;
  - a tfds data directory holding a prepared `cifar10` / `cifar100`;
  - None: tfds' default directory (downloaded there if allowed).
Python batches are pickled dicts with b'data' (N, 3072) uint8 in CHW-planar
order and b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100). Binary files
are records of label byte(s) + 3072 image bytes.
"""

import dataclasses
import io
import os
import pickle
import tarfile
import warnings
import zlib

import numpy as np

from mobilenets.data import tfds_source
from mobilenets.data.common import DatasetInfo, check_labels, in_memory_source, require_path, resolve_split
from mobilenets.errors import DataError, first_line

IMAGE_SIZE = (32, 32)
DEFAULT_AUGMENT = "cifar"
EVAL_CROP_FRACTION = 1.0
SPLITS = {"train": "train", "test": "test", "validation": "test", "val": "test"}
URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
DOWNLOADS = "https://www.cs.toronto.edu/~kriz/"  # + an archive's name


class PartialCopyWarning(UserWarning):
    """A CIFAR folder holds only some of a split's batch files."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one CIFAR variant keeps what, in both official formats."""

    num_classes: int
    num_examples: dict
    python_dir: str
    python_files: dict  # split -> file names
    label_key: bytes
    binary_dir: str
    binary_files: dict
    label_bytes: int  # label bytes in front of each binary record
    label_index: int  # which of them is the class label
    archives: tuple


LAYOUTS = {
    "cifar10": Layout(
        num_classes=10,
        num_examples={"train": 50000, "test": 10000},
        python_dir="cifar-10-batches-py",
        python_files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        label_key=b"labels",
        binary_dir="cifar-10-batches-bin",
        binary_files={"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
        label_bytes=1,
        label_index=0,
        archives=("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"),
    ),
    "cifar100": Layout(
        num_classes=100,
        num_examples={"train": 50000, "test": 10000},
        python_dir="cifar-100-python",
        python_files={"train": ("train",), "test": ("test",)},
        label_key=b"fine_labels",
        binary_dir="cifar-100-binary",
        binary_files={"train": ("train.bin",), "test": ("test.bin",)},
        label_bytes=2,
        label_index=1,
        archives=("cifar-100-python.tar.gz", "cifar-100-binary.tar.gz"),
    ),
}


def info(name, data_dir=None):
    """DatasetInfo whose split sizes are counted in a local copy (a partial one included): binary
    records from the file sizes, python batches from their labels; tfds' own counts otherwise."""
    layout = LAYOUTS[name]
    splits = dict(layout.num_examples)
    path = None if data_dir is None else require_path(data_dir, f"{name} data_dir", _how_to(name))
    found = None if path is None else _find_local_copy(path, layout)
    if found is not None:
        splits = {split: _count(found, layout, split, _how_to(name)) for split in layout.num_examples}
    else:  # tfds will read or download it: fail now, before a training run creates anything, if it cannot
        tfds_source.check_downloadable(name, path, url=_archive_url(name), how_to=_how_to(name))
    return DatasetInfo(name, layout.num_classes, IMAGE_SIZE, splits, DEFAULT_AUGMENT, EVAL_CROP_FRACTION)


def _count(found, layout, split, how_to):
    """Examples of `split` in the local copy `found` = (kind, location)."""
    kind, location = found
    record = layout.label_bytes + 3072
    if kind == "binary":
        return sum(_file_size(path, how_to) // record for path in _present(location, layout.binary_files[split], split))
    if kind == "python":
        paths = _present(location, layout.python_files[split], split)
        return sum(len(_python_labels(path, _read_file(path, how_to), layout)) for path in paths)
    sizes = _archive_members(location, layout, split)
    if sizes is not None:
        return sum(size // record for size in sizes)
    kind, files = _split_files(found, layout, split, how_to)  # a python archive: its labels
    return sum(len(_python_labels(where, data, layout)) for where, data in files)


def _file_size(path, how_to):
    try:
        return os.path.getsize(path)
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or first_line(e)}); {how_to}") from e


def _archive_members(archive, layout, split):
    """Sizes of the split's binary members of `archive` (tar headers only), or None for a python archive."""
    wanted = [f"{layout.binary_dir}/{n}" for n in layout.binary_files[split]]
    try:
        with tarfile.open(archive, "r:*") as tar:
            sizes = {m.name[2:] if m.name.startswith("./") else m.name: m.size for m in tar if m.isfile()}
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        return None  # _split_files reads it and names the problem
    return [sizes[k] for k in wanted] if all(k in sizes for k in wanted) else None


def load(request, *, download=True):
    """Source for CIFAR; see the module docstring for what `data_dir` may be.

    `download`: when no local copy is found, let tensorflow-datasets download
    and prepare one in `data_dir` (tfds' default directory when None).
    """
    layout = LAYOUTS[request.name]
    split = resolve_split(request.split, SPLITS, request.name)
    how_to = _how_to(request.name)
    if request.data_dir is None:
        return _from_tfds(request, split, None, download, how_to)
    path = require_path(request.data_dir, f"{request.name} data_dir", how_to)
    found = _find_local_copy(path, layout)
    if found is None:
        return _from_tfds(request, split, path, download, how_to)
    location = found[1]
    kind, files = _split_files(found, layout, split, how_to)
    parse = _parse_python if kind == "python" else _parse_binary
    arrays = [parse(where, data, layout) for where, data in files]
    for (where, _), (_, labels) in zip(files, arrays):
        check_labels(labels, layout.num_classes, where, f"it is not a {request.name} file; {how_to}")
    images = np.concatenate([a[0] for a in arrays])
    labels = np.concatenate([a[1] for a in arrays])
    return in_memory_source(images, labels, location)


def _archive_url(name):
    return DOWNLOADS + LAYOUTS[name].archives[0]


def _how_to(name):
    return (
        f"download {_archive_url(name)} on a machine with network and pass the archive or its extracted folder as "
        f"--data-dir (data_dir), or run `tfds build {name} --data_dir DIR` there and pass DIR"
    )


def _from_tfds(request, split, data_dir, download, how_to):
    return tfds_source.tfds_source(
        request.name, split, data_dir, training=request.training, seed=request.seed, download=download, how_to=how_to,
        url=_archive_url(request.name),
    )


def _find_local_copy(path, layout):
    """('archive'|'python'|'binary', location) for the official copy at `path`, or None."""
    if os.path.isfile(path):
        return "archive", path
    for kind, files in (("python", layout.python_files), ("binary", layout.binary_files)):
        if any(os.path.isfile(os.path.join(path, name)) for names in files.values() for name in names):
            return kind, path
    for kind, folder in (("python", layout.python_dir), ("binary", layout.binary_dir)):
        if os.path.isdir(os.path.join(path, folder)):
            return kind, os.path.join(path, folder)
    for archive in layout.archives:
        if os.path.isfile(os.path.join(path, archive)):
            return "archive", os.path.join(path, archive)
    return None


def _split_files(found, layout, split, how_to):
    """('python'|'binary', [(where, bytes)]) of the split's batches in the local copy `found`."""
    kind, location = found
    if kind == "archive":
        return _read_archive(location, layout, split)
    names = layout.python_files[split] if kind == "python" else layout.binary_files[split]
    files = [(path, _read_file(path, how_to)) for path in _present(location, names, split)]
    if not files:
        raise DataError(f"{location} holds none of the {split} batches ({', '.join(names)}); {how_to}")
    return kind, files


def _present(location, names, split):
    """The paths of the batch files `names` found in `location`, warning once about the missing ones."""
    paths = [os.path.join(location, n) for n in names]
    present = [p for p in paths if os.path.exists(p)]
    missing = [n for n, p in zip(names, paths) if p not in present]
    if missing:
        warnings.warn(f"{location} lacks {', '.join(missing)}: its {split} split has {len(present)} of the "
                      f"{len(names)} batches", PartialCopyWarning, stacklevel=1)
    return present


def _read_file(path, how_to):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or first_line(e)}); {how_to}") from e


def _read_archive(archive, layout, split):
    """('python'|'binary', [(archive:member, bytes)]) of the split's batches, in the official order."""
    folders = {"python": layout.python_dir, "binary": layout.binary_dir}
    wanted = [f"{layout.python_dir}/{n}" for n in layout.python_files[split]]
    wanted += [f"{layout.binary_dir}/{n}" for n in layout.binary_files[split]]
    found = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                key = member.name[2:] if member.name.startswith("./") else member.name
                if key in wanted and member.isfile():
                    found[key] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(
            f"{archive} is truncated or corrupt ({type(e).__name__}: {first_line(e, 120)}); download it again from {URL}"
        ) from e
    for kind, folder in folders.items():
        keys = [k for k in wanted if k.startswith(folder + "/")]
        if all(k in found for k in keys):
            return kind, [(f"{archive}:{k}", found[k]) for k in keys]
    missing = [k for k in wanted if k not in found]
    raise DataError(
        f"{archive} does not contain the official CIFAR batches (missing {missing[0]}); "
        f"it is truncated or not {layout.archives[0]}: download it again from {URL}"
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: plain containers and numpy arrays, nothing executable."""

    NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}

    def find_class(self, module, name):
        numpy_array = module.split(".")[0] == "numpy" and name in self.NUMPY_NAMES
        if numpy_array or (module, name) == ("_codecs", "encode"):  # protocol-2 bytes written by Python 3
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _python_labels(where, data, layout):
    """The labels of one pickled batch (what counting it needs)."""
    return _unpickle(where, data, layout)[1]


def _parse_python(where, data, layout):
    """(images uint8 (N, 32, 32, 3), labels) of one pickled batch."""
    pixels, labels = _unpickle(where, data, layout)
    if pixels.ndim != 2 or pixels.shape[1] != 3072 or len(labels) != len(pixels):
        raise DataError(
            f"{where}: expected b'data' of shape (N, 3072) and N labels, got {pixels.shape} and {len(labels)}; "
            f"download it again from {URL}"
        )
    return _planar_to_hwc(pixels), labels


def _unpickle(where, data, layout):
    """(pixels (N, 3072) uint8, labels) of one pickled batch, unchecked."""
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    except Exception as e:  # truncated pickle: EOFError, UnpicklingError, ValueError, KeyError...
        raise DataError(
            f"{where} is not a readable CIFAR batch, truncated or corrupt ({type(e).__name__}: {first_line(e, 80)}); "
            f"download it again from {URL}"
        ) from e
    return pixels, labels


def _parse_binary(where, data, layout):
    """(images uint8 (N, 32, 32, 3), labels) of one binary batch."""
    record = layout.label_bytes + 3072
    if not data or len(data) % record:
        raise DataError(
            f"{where} has {len(data)} bytes, not a whole number of {record}-byte records: it is truncated or "
            f"corrupt; download it again from {URL}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return _planar_to_hwc(records[:, layout.label_bytes :]), records[:, layout.label_index].astype(np.int64)


def _planar_to_hwc(pixels):
    return np.ascontiguousarray(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
