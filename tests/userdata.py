"""Data shaped as users have it, and the command line as users run it, for journey tests.

    photos = write_photos(tmp_path / "photos")            # root/<class>/*.png|jpg, one broken file
    cifar = write_cifar10_python(tmp_path / "cifar10")     # a partial copy in the official python layout
    result = run_cli("train.py", "--preset", "smoke", ...) # the CLI in a subprocess, from the repo root
    assert_one_line_error(result, "--dataset folder")

Every image is coloured by its class plus noise, so a few steps learn it and a trained
model's figures are far from chance.
"""

import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("daisy", "rose", "tulip")
PALETTE = ((230, 220, 60), (200, 40, 60), (60, 90, 210), (40, 180, 70), (240, 140, 20),
           (120, 60, 30), (20, 200, 200), (250, 250, 250), (10, 10, 10), (160, 160, 160))
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def class_images(label, count, size, rng):
    """`count` uint8 (H, W, 3) images of class `label`: its colour plus noise."""
    height, width = (size, size) if isinstance(size, int) else size
    colour = np.array(PALETTE[label % len(PALETTE)], np.float64)
    noise = rng.normal(0, 35, (count, height, width, 3))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def encode(image, fmt):
    import tensorflow as tf

    return (tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=95)).numpy()


def write_photos(root, classes=CLASSES, per_class=12, size=(40, 48), formats=("png", "jpg"), bad_file=True, seed=0,
                 varied_sizes=False):
    """root/<class>/img_<i>.<fmt> (formats alternate), and root/<first class>/broken.jpg that is not
    an image when `bad_file`: a folder of photos as a user has it. varied_sizes: each photo's sides
    drawn from 0.75-1.5x `size`, as photos differ. Returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = (size, size) if isinstance(size, int) else size
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        if varied_sizes:
            images = [class_images(label, 1, (int(height * rng.uniform(0.75, 1.5)), int(width * rng.uniform(0.75, 1.5))),
                                   rng)[0] for _ in range(per_class)]
        else:
            images = class_images(label, per_class, size, rng)
        for i, image in enumerate(images):
            fmt = formats[i % len(formats)]
            (root / name / f"img_{i:03d}.{fmt}").write_bytes(encode(image, fmt))
    if bad_file:
        (root / classes[0] / "broken.jpg").write_bytes(b"this is not a JPEG")
    return root


def write_npz(path, n=60, size=32, num_classes=3, seed=0):
    """numpy.savez(path, x=uint8 (n, size, size, 3), y=int64 (n,)), classes in turn. Returns path."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    x = np.concatenate([class_images(label, 1, size, rng) for label in y])
    np.savez(path, x=x, y=y.astype(np.int64))
    return Path(path)


def _cifar_rows(images):
    """(N, 32, 32, 3) -> the official (N, 3072) channel-planar rows."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_cifar10_python(root, per_batch=30, batches=CIFAR10_TRAIN_BATCHES[:2], test=30, num_classes=10, seed=0):
    """root/cifar-10-batches-py/ as the official archive extracts, holding only `batches` of the five
    training batches (a partial copy), `test` test images and batches.meta. Returns root."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def write(name, count):
        labels = np.arange(count) % num_classes
        images = np.concatenate([class_images(label, 1, 32, rng) for label in labels])
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                         b"data": _cifar_rows(images), b"filenames": [b"x.png"] * count}, f, protocol=2)

    for name in batches:
        write(name, per_batch)
    write("test_batch", test)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072}, f, protocol=2)
    return Path(root)


def keras_h5(path, name="mobilenetv2", width=0.35, size=32, include_top=True, seed=0):
    """A keras.applications model with random weights and BatchNorm statistics saved as .h5 weights:
    the offline stand-in for a downloaded ImageNet file. Returns path."""
    import tf_keras as keras

    from mobilenets.models.pretrained import KERAS_APPLICATIONS, keras_application

    if include_top:
        model = keras_application(name, width, (size, size, 3), 1000, weights=None)
    else:  # what keras.applications' *_no_top.h5 files hold
        constructor, extra = KERAS_APPLICATIONS[name]
        model = constructor(input_shape=(size, size, 3), alpha=width, weights=None, include_top=False, **extra)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    model.save_weights(str(path))
    return Path(path)


MEDIAPIPE_INSTALL = "pip install --no-deps mediapipe==1.2.3 (README: the three commands)"


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_module(name, install):
    """The module `name`. Where it cannot be imported: a skip on a developer's machine, a failure in CI
    (CI=true), with one line saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        message = f"{name} cannot be imported ({error}): {install}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def run_cli(*argv, cwd=REPO, timeout=900, env=None):
    """`python *argv` in a subprocess, from the repository root by default; returns the CompletedProcess
    (text stdout/stderr). A script path is taken relative to the repository."""
    argv = [str(a) for a in argv]
    if argv and argv[0].endswith(".py") and not os.path.isabs(argv[0]):
        argv[0] = str(REPO / argv[0])
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


# A command run with TensorFlow unimportable: what it refuses before TensorFlow loads is its one line; a TensorFlow
# import on the way ends in an ImportError traceback instead.
WITHOUT_TENSORFLOW = """
import runpy, sys
sys.modules["tensorflow"] = None
sys.argv = sys.argv[1:]
if sys.argv[0].endswith(".py"):
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    runpy.run_module(sys.argv[0], run_name="__main__")
"""


def run_without_tensorflow(command, *argv, env=None):
    """`run_cli` of a root script ('train.py') or a module ('mobilenets.commands.summary') that may not import
    TensorFlow."""
    return run_cli("-c", WITHOUT_TENSORFLOW, command, *argv, env=env)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_one_line_error(result, *fragments):
    """The command failed with exactly one non-empty stderr line, `error: ...`, naming every fragment."""
    lines = error_lines(result)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def assert_ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def write_cifar10_binary(root, per_batch=30, batches=CIFAR10_TRAIN_BATCHES[:2], test=30, num_classes=10, seed=0):
    """root/cifar-10-batches-bin/ as the official binary archive extracts (records of a label byte and
    3072 channel-planar bytes), holding only `batches` (as data_batch_N.bin) of the five training
    batches and test_batch.bin. Returns root."""
    folder = Path(root) / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, count in [(f"{b}.bin", per_batch) for b in batches] + [("test_batch.bin", test)]:
        labels = np.arange(count) % num_classes
        images = np.concatenate([class_images(label, 1, 32, rng) for label in labels])
        records = np.concatenate([labels[:, None].astype(np.uint8), _cifar_rows(images)], axis=1)
        (folder / name).write_bytes(records.tobytes())
    return Path(root)


def write_images_with_pillow(folder, label, formats, size=(40, 48), seed=0):
    """folder/photo.<fmt> for each of `formats` ('bmp', 'gif', 'webp', ...; what Pillow writes), an
    image of class `label` each. Returns the paths."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = class_images(label, len(formats), size, np.random.default_rng(seed))
    paths = [folder / f"photo.{fmt}" for fmt in formats]
    for image, path in zip(images, paths):
        Image.fromarray(image).save(path)
    return paths


def tree_snapshot(root):
    """{relative path: bytes (None for a folder)} of everything under `root`: compare two to see that
    nothing was written, changed or removed."""
    root = Path(root)
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}
