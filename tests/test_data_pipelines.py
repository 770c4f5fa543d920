"""mobilenets.data: every on-disk format written in tmp_path (tests/dataformats.py) and read
back exactly; training-mode properties; bad input -> one-line DataError."""

import gzip
import os
import pathlib
import pickle
import warnings

import numpy as np
import pytest
import tensorflow as tf

from mobilenets.data import AUGMENTATIONS, SkippedImagesWarning, dataset_info, list_datasets, make_dataset, scan_folder
from mobilenets.data import augment, imagenet, npz, tfds_source
from mobilenets.errors import ConfigError, DataError
from dataformats import (CIFAR10_NAMES, RNG, cifar_split, random_images, write_cifar10_binary, write_cifar10_python,
                         write_cifar_binary, write_folder_tree, write_npz, write_pickle, write_shards, write_tar_gz)


def collect(dataset):
    """All (images, labels) of a batched dataset, concatenated."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(xs), np.concatenate(ys)


def assert_one_line_naming(excinfo, *names):
    message = str(excinfo.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, message


# ------------------------------------------------------- exact round trips


@pytest.fixture(scope="module")
def cifar10_python(tmp_path_factory):
    return write_cifar10_python(tmp_path_factory.mktemp("cifar10py"))


@pytest.mark.parametrize("where", ["folder", "parent", "archive", "archive_parent"])
def test_cifar10_python_eval_returns_stored_pixels(cifar10_python, tmp_path, where):
    folder, data = cifar10_python
    data_dir = {"folder": folder, "parent": folder.parent}.get(where)
    if where.startswith("archive"):
        archive = write_tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
        data_dir = archive if where == "archive" else tmp_path
    for split in ("train", "test"):
        x, y = collect(make_dataset("cifar10", split, 7, training=False, data_dir=data_dir))
        assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (len(data[split][0]), 32, 32, 3)
        np.testing.assert_array_equal(x, data[split][0])
        np.testing.assert_array_equal(y, data[split][1])


@pytest.mark.parametrize("archived", [False, True])
def test_cifar10_binary_eval_returns_stored_pixels(tmp_path, archived):
    folder, data = write_cifar10_binary(tmp_path)
    data_dir = write_tar_gz(folder, tmp_path / "cifar-10-binary.tar.gz") if archived else folder
    x, y = collect(make_dataset("cifar10", "validation", 4, training=False, data_dir=data_dir))
    np.testing.assert_array_equal(x, data["test"][0])
    np.testing.assert_array_equal(y, data["test"][1])


def test_cifar100_python_and_binary_use_fine_labels(tmp_path, monkeypatch):
    folder = tmp_path / "py" / "cifar-100-python"
    folder.mkdir(parents=True)
    data = {"train": cifar_split(100, 8), "test": cifar_split(100, 5)}
    for split, (x, y) in data.items():
        write_pickle(folder / split, x, y, label_key=b"fine_labels")
    binary, bin_data = write_cifar_binary(tmp_path / "bin", "cifar-100-binary", {"train": ["train.bin"], "test": ["test.bin"]}, 2, 100)
    for data_dir, expected in ((folder, data), (binary, bin_data)):
        x, y = collect(make_dataset("cifar100", "train", 3, training=False, data_dir=data_dir))
        np.testing.assert_array_equal(x, expected["train"][0])
        np.testing.assert_array_equal(y, expected["train"][1])
    monkeypatch.setattr(tfds_source, "can_reach", lambda url: True)  # tfds could download it
    assert dataset_info("cifar100").num_classes == 100


def test_cifar10_prepared_tfds_directory_reads_offline(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder("cifar10", data_dir=str(tmp_path))
    version_dir = tmp_path / "cifar10" / str(builder.info.version)
    version_dir.mkdir(parents=True)
    x, y = cifar_split(10, 5)
    with tf.io.TFRecordWriter(str(version_dir / "cifar10-test.tfrecord-00000-of-00001")) as writer:
        for i in range(5):
            writer.write(builder.info.features.serialize_example({"id": f"test_{i}", "image": x[i], "label": int(y[i])}))
    tfds.folder_dataset.write_metadata(
        data_dir=str(version_dir),
        features=builder.info.features,
        split_infos=None,
        filename_template="{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
    )
    got_x, got_y = collect(make_dataset("cifar10", "test", 2, training=False, data_dir=tmp_path, download=False))
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)


@pytest.mark.parametrize("label_offset", [1, 0])
def test_tfrecord_shards_eval_matches_decoded_jpegs(tmp_path, label_offset):
    stored = RNG.integers(label_offset, 1000 + label_offset, 7)
    written = write_shards(tmp_path, "validation", stored)
    write_shards(tmp_path, "train", stored[:4])
    dataset = make_dataset("imagenet", "validation", 3, training=False, data_dir=tmp_path, image_size=(20, 24),
                           eval_crop_fraction=1.0, label_offset=label_offset)
    x, y = collect(dataset)
    expected = np.stack([tf.io.decode_jpeg(jpeg, channels=3).numpy() for jpeg, _ in written])
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, stored - label_offset)


def test_folder_tree_eval_matches_decoded_jpeg_and_png(tmp_path):
    written = write_folder_tree(tmp_path)
    info = dataset_info("folder", tmp_path)
    assert info.num_classes == 3 and info.splits == {"train": 6, "validation": 6}
    x, y = collect(make_dataset("folder", "validation", 4, training=False, data_dir=tmp_path, image_size=(12, 16),
                                eval_crop_fraction=1.0))
    expected = np.stack([tf.io.decode_image(open(p, "rb").read(), channels=3).numpy() for p, _ in written["val"]])
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, [label for _, label in written["val"]])


def test_imagenet_folder_tree_needs_1000_classes(tmp_path):
    classes = [f"n{i:08d}" for i in range(1000)]
    write_folder_tree(tmp_path, classes=classes[:2], per_class=1, splits=("train",))
    with pytest.raises(DataError) as excinfo:
        make_dataset("imagenet2012", "train", 2, training=True, data_dir=tmp_path)
    assert_one_line_naming(excinfo, tmp_path, "folder")
    for name in classes[2:]:
        (tmp_path / "train" / name).mkdir()
    x, y = collect(make_dataset("imagenet2012", "train", 2, training=True, data_dir=tmp_path, image_size=16))
    assert x.shape == (2, 16, 16, 3) and sorted(y) == [0, 1]


def test_npz_splits_are_disjoint_seeded_and_exact(tmp_path):
    path = tmp_path / "small.npz"
    x, y = write_npz(path)
    indices = npz.split_indices(len(x), 0.15, split_seed=0)
    assert len(indices["validation"]) == 6 and not set(indices["train"]) & set(indices["validation"])
    assert sorted(np.concatenate(list(indices.values()))) == list(range(len(x)))
    for split in ("train", "validation"):
        got_x, got_y = collect(make_dataset("npz", split, 5, training=False, data_dir=path))
        np.testing.assert_array_equal(got_x, x[indices[split]])
        np.testing.assert_array_equal(got_y, y[indices[split]])
    other = npz.split_indices(len(x), 0.15, split_seed=1)["validation"]
    assert not np.array_equal(other, indices["validation"])
    assert dataset_info("npz", path).splits == {"train": 34, "validation": 6}


def test_synthetic_is_deterministic_and_class_dependent():
    first = collect(make_dataset("synthetic", "train", 50, training=False, num_classes=4, num_examples=200))
    second = collect(make_dataset("synthetic", "train", 50, training=False, num_classes=4, num_examples=200))
    np.testing.assert_array_equal(first[0], second[0])
    x, y = first
    means = np.stack([x[y == c].mean(axis=(0, 1, 2)) for c in range(4)])
    spread = min(np.linalg.norm(means[a] - means[b]) for a in range(4) for b in range(a + 1, 4))
    assert spread > 10  # class means are far apart: a model can learn them
    x, _ = collect(make_dataset("synthetic", "val", 8, training=False, image_size=(7, 9), num_examples=8))
    assert x.shape == (8, 7, 9, 3)


# ------------------------------------------------------------ training mode


@pytest.fixture
def every_source(tmp_path, cifar10_python):
    """(name, data_dir, options) for each source, with at least 12 training examples."""
    write_folder_tree(tmp_path / "tree", per_class=4, splits=("train",))
    write_shards(tmp_path, "train", RNG.integers(1, 1001, 12))
    write_npz(tmp_path / "a.npz")
    return [
        ("cifar10", cifar10_python[0], {}),
        ("folder", tmp_path / "tree", {}),
        ("imagenet2012", tmp_path, {}),
        ("npz", tmp_path / "a.npz", {}),
        ("synthetic", None, {"num_examples": 12}),
    ]


def test_training_batches_have_fixed_shape_and_raw_pixel_range(every_source):
    for name, data_dir, options in every_source:
        dataset = make_dataset(name, "train", 4, training=True, data_dir=data_dir, image_size=(16, 16), seed=3, **options)
        assert dataset.element_spec[0].shape == (4, 16, 16, 3), name
        x, y = collect(dataset)
        assert x.dtype == np.float32 and y.dtype == np.int32, name
        assert len(x) % 4 == 0 and 0 <= x.min() and x.max() <= 255 and x.max() > 1, name


def test_training_is_deterministic_given_seed_and_reshuffles_each_epoch(every_source):
    for name, data_dir, options in every_source:
        def epochs(seed, count=2):
            dataset = make_dataset(name, "train", 4, training=True, data_dir=data_dir, image_size=(16, 16), seed=seed,
                                   **options)
            return [collect(dataset) for _ in range(count)]

        run_a, run_b, other_seed = epochs(7), epochs(7), epochs(8, count=1)
        for (xa, ya), (xb, yb) in zip(run_a, run_b):
            np.testing.assert_array_equal(xa, xb, err_msg=name)
            np.testing.assert_array_equal(ya, yb, err_msg=name)
        assert not np.array_equal(run_a[0][0], run_a[1][0]), name  # a new order/augmentation each epoch
        assert not np.array_equal(run_a[0][0], other_seed[0][0]), name


def test_training_drops_the_remainder_and_eval_keeps_every_example(cifar10_python):
    folder, data = cifar10_python
    assert sum(len(y) for _, y in make_dataset("cifar10", "train", 8, training=True, data_dir=folder)) == 16
    x, y = collect(make_dataset("cifar10", "train", 8, training=False, data_dir=folder))
    assert len(y) == 20
    shuffled_y = collect(make_dataset("cifar10", "train", 4, training=True, data_dir=folder, augment="none"))[1]
    assert sorted(shuffled_y) == sorted(data["train"][1]) and not np.array_equal(shuffled_y, data["train"][1])


# ------------------------------------------------------------ augmentations


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("in_size", [(32, 32), (40, 24)])
def test_augmentations_give_target_shape_in_raw_range(name, in_size):
    image = tf.constant(random_images(1, *in_size)[0])
    outputs = [AUGMENTATIONS[name](image, (20, 18), tf.constant([s, 1], tf.int64)).numpy() for s in range(8)]
    for out in outputs:
        assert out.shape == (20, 18, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 255.0
    if name != "none":
        assert any(not np.array_equal(outputs[0], o) for o in outputs[1:])


def test_cifar_augmentation_is_a_shifted_possibly_flipped_copy():
    image = random_images(1)[0]
    out = AUGMENTATIONS["cifar"](tf.constant(image), (32, 32), tf.constant([5, 9], tf.int64)).numpy().astype(np.uint8)
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])
    candidates = [padded[i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
    assert any(np.array_equal(out, c) or np.array_equal(out, c[:, ::-1]) for c in candidates)


def test_eval_center_crop_takes_the_middle():
    image = np.zeros((16, 16, 3), np.uint8)
    image[4:12, 4:12] = 200  # a centred square covering half of each side
    out = augment.center_crop(tf.constant(image), (8, 8), 0.5).numpy()
    np.testing.assert_array_equal(out, np.full((8, 8, 3), 200.0))
    wide = augment.center_crop(tf.constant(random_images(1, 10, 30)[0]), (10, 10), 1.0)
    assert wide.shape == (10, 10, 3)


# ---------------------------------------------------------------- bad input


def test_missing_data_dir_names_it(tmp_path):
    for name in ("cifar10", "imagenet2012", "folder", "npz"):
        with pytest.raises(DataError) as excinfo:
            make_dataset(name, "train", 2, training=True, data_dir=tmp_path / "nope")
        assert_one_line_naming(excinfo, tmp_path / "nope")


def test_truncated_archive_names_it(cifar10_python, tmp_path):
    archive = write_tar_gz(cifar10_python[0], tmp_path / "cifar-10-python.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "test", 2, training=False, data_dir=archive)
    assert_one_line_naming(excinfo, archive, "download it again")


def test_corrupt_archive_names_it(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(gzip.compress(b"not a tar file at all" * 100))
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "train", 2, training=True, data_dir=archive)
    assert_one_line_naming(excinfo, archive)


def test_truncated_pickle_and_binary_batches_name_the_file(cifar10_python, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in CIFAR10_NAMES["test"]:
        (folder / name).write_bytes((cifar10_python[0] / name).read_bytes()[:5000])
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "test", 2, training=False, data_dir=folder)
    assert_one_line_naming(excinfo, folder / "test_batch")

    binary, _ = write_cifar10_binary(tmp_path / "bin")
    (binary / "test_batch.bin").write_bytes((binary / "test_batch.bin").read_bytes()[:-10])
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "test", 2, training=False, data_dir=binary)
    assert_one_line_naming(excinfo, binary / "test_batch.bin", "truncated")


def test_pickle_with_foreign_objects_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "test", 2, training=False, data_dir=folder)
    assert_one_line_naming(excinfo, folder / "test_batch")


def test_out_of_range_labels_name_the_file(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    write_pickle(folder / "test_batch", random_images(3), [1, 10, 2])
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "test", 2, training=False, data_dir=folder)
    assert_one_line_naming(excinfo, folder / "test_batch", "label 10")

    np.savez(tmp_path / "neg.npz", x=random_images(4, 8, 8), y=np.array([0, 1, -1, 2]))
    with pytest.raises(DataError) as excinfo:
        make_dataset("npz", "train", 2, training=True, data_dir=tmp_path / "neg.npz")
    assert_one_line_naming(excinfo, tmp_path / "neg.npz", "label -1")

    write_shards(tmp_path, "train", [5, 0, 7], num_shards=1)  # 0 is out of range for 1-based shards
    with pytest.raises(DataError) as excinfo:
        make_dataset("imagenet2012", "train", 2, training=True, data_dir=tmp_path)
    assert_one_line_naming(excinfo, tmp_path / "train-00000-of-00001", "label_offset")


def test_large_shards_check_labels_while_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(imagenet, "SCAN_LIMIT_BYTES", 0)  # too big to scan: only the first shard is read up front
    write_shards(tmp_path, "train", [3, 4, 0], num_shards=2)
    dataset = make_dataset("imagenet2012", "train", 1, training=False, data_dir=tmp_path, image_size=8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="train-00001-of-00002.*label_offset"):
        collect(dataset)


def test_incomplete_shard_set_warns(tmp_path):
    write_shards(tmp_path, "train", [1, 2, 3, 4], num_shards=2)
    os.remove(tmp_path / "train-00001-of-00002")
    with pytest.warns(UserWarning, match="found 1 of 2 'train' shards"):
        make_dataset("imagenet2012", "train", 2, training=True, data_dir=tmp_path)


def test_truncated_tfrecord_shard_names_it(tmp_path):
    write_shards(tmp_path, "validation", [1, 2, 3, 4], num_shards=2)
    shard = tmp_path / "validation-00001-of-00002"
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(DataError) as excinfo:
        make_dataset("imagenet2012", "validation", 2, training=False, data_dir=tmp_path)
    assert_one_line_naming(excinfo, shard)


def test_corrupt_images_in_a_folder_tree_are_skipped_and_counted(tmp_path):
    written = write_folder_tree(tmp_path, per_class=3, splits=("train",))
    bad = [written["train"][0][0], written["train"][4][0]]
    with open(bad[0], "r+b") as f:  # a truncated JPEG
        f.truncate(40)
    with open(bad[1], "wb") as f:  # garbage named .png
        f.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    with pytest.warns(SkippedImagesWarning, match="skipped 2 of 9"):
        scan = scan_folder(tmp_path, "train")
    assert sorted(scan.skipped) == sorted(bad) and len(scan.paths) == 7
    with pytest.warns(SkippedImagesWarning):
        x, y = collect(make_dataset("folder", "train", 2, training=False, data_dir=tmp_path, image_size=8))
    assert len(y) == 7

    junk = written["train"][8][0]
    with open(junk, "wb") as f:
        f.write(b"junk")
    with pytest.warns(SkippedImagesWarning, match="skipped 1 of 9"):  # headers only: the other two pass...
        dataset = make_dataset("folder", "train", 2, training=False, data_dir=tmp_path, image_size=8, validate="header")
    assert len(collect(dataset)[1]) == 6  # ...and the pipeline drops them when they fail to decode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path, _ in written["train"]:
            with open(path, "wb") as f:
                f.write(b"junk")
        with pytest.raises(DataError) as excinfo:
            make_dataset("folder", "train", 2, training=True, data_dir=tmp_path)
    assert_one_line_naming(excinfo, tmp_path / "train")


def test_folder_tree_without_the_split_or_classes_names_it(tmp_path):
    write_folder_tree(tmp_path, per_class=1, splits=("train",))
    with pytest.raises(DataError) as excinfo:
        make_dataset("folder", "validation", 2, training=False, data_dir=tmp_path)
    assert_one_line_naming(excinfo, tmp_path, "validation")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError) as excinfo:
        make_dataset("folder", "train", 2, training=True, data_dir=tmp_path / "empty")
    assert_one_line_naming(excinfo, tmp_path / "empty" / "train", "class")


def test_bad_npz_files_name_the_file(tmp_path):
    path = tmp_path / "trunc.npz"
    write_npz(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError) as excinfo:
        make_dataset("npz", "train", 2, training=True, data_dir=path)
    assert_one_line_naming(excinfo, path)
    np.savez(tmp_path / "nokey.npz", images=random_images(2))
    with pytest.raises(DataError) as excinfo:
        make_dataset("npz", "train", 2, training=True, data_dir=tmp_path / "nokey.npz")
    assert_one_line_naming(excinfo, tmp_path / "nokey.npz", "'x'")


def test_tfds_without_network_explains_how_to_prepare_offline(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds_source, "can_reach", lambda url: True)  # the host answers, the download fails

    def no_network(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'\n(Name or service not known)")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_network)
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "train", 2, training=True, data_dir=tmp_path)
    assert_one_line_naming(excinfo, tmp_path, "cifar-10-python.tar.gz", "tfds build")
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "train", 2, training=True, data_dir=tmp_path, download=False)
    assert_one_line_naming(excinfo, tmp_path, "cifar-10-python.tar.gz")
    with pytest.raises(DataError) as excinfo:
        make_dataset("imagenet2012", "train", 2, training=True, data_dir=tmp_path)
    assert_one_line_naming(excinfo, tmp_path, "manual_dir")


def test_bad_arguments_are_config_errors(cifar10_python):
    assert list_datasets() == ["cifar10", "cifar100", "folder", "imagenet2012", "npz", "synthetic"]
    with pytest.raises(ConfigError, match="unknown dataset"):
        make_dataset("mnist", "train", 2, training=True)
    with pytest.raises(ConfigError, match="no option 'label_offset'"):
        make_dataset("cifar10", "train", 2, training=True, data_dir=cifar10_python[0], label_offset=1)
    with pytest.raises(ConfigError, match="unknown augmentation"):
        make_dataset("synthetic", "train", 2, training=True, augment="mixup")
    with pytest.raises(DataError, match="split 'dev'"):
        make_dataset("cifar10", "dev", 2, training=False, data_dir=cifar10_python[0])
    with pytest.raises(DataError, match="fewer than batch_size"):
        make_dataset("cifar10", "test", 64, training=True, data_dir=cifar10_python[0])


def test_dataset_info_gives_classes_size_and_split_sizes(monkeypatch):
    monkeypatch.setattr(tfds_source, "can_reach", lambda url: True)  # tfds could download it
    assert dataset_info("cifar10").splits == {"train": 50000, "test": 10000}
    info = dataset_info("imagenet")
    assert (info.num_classes, info.image_size, info.splits["validation"]) == (1000, (224, 224), 50000)
    assert dataset_info("synthetic", num_classes=3).num_classes == 3
    assert imagenet.NUM_CLASSES == 1000


# ------------------------------------------- sizes counted on disk (issue 12)


def test_split_sizes_are_counted_in_partial_copies_of_every_format(cifar10_python, tmp_path):
    folder, data = cifar10_python  # 20 training and 6 test images, not 50,000 and 10,000
    archive = write_tar_gz(folder, tmp_path / "cifar-10-python.tar.gz")
    binary, _ = write_cifar10_binary(tmp_path / "bin")
    binary_archive = write_tar_gz(binary, tmp_path / "cifar-10-binary.tar.gz")
    for where in (folder, folder.parent, archive, binary, binary_archive):
        assert dataset_info("cifar10", where).splits == {"train": 20, "test": 6}, where
    shards = tmp_path / "shards"
    shards.mkdir()
    write_shards(shards, "train", list(range(1, 8)), num_shards=3)
    write_shards(shards, "validation", [1, 2, 3], num_shards=2)
    assert dataset_info("imagenet", shards).splits == {"train": 7, "validation": 3}
    assert [imagenet.count_records(f) for f in imagenet.shard_files(str(shards), "train")] == [3, 3, 1]
    write_folder_tree(tmp_path / "tree", per_class=3)
    assert dataset_info("folder", tmp_path / "tree").splits == {"train": 9, "validation": 9}


def test_truncated_tfrecord_shard_is_named_when_counted(tmp_path):
    write_shards(tmp_path, "train", [1, 2, 3], num_shards=1)
    shard = tmp_path / "train-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DataError) as excinfo:
        dataset_info("imagenet", tmp_path)
    assert_one_line_naming(excinfo, shard, "truncated inside record 3")


def test_flat_photo_folder_holds_out_a_fraction_of_each_class_for_validation(tmp_path):
    root = tmp_path / "photos"
    write_folder_tree(tmp_path, classes=("cat", "dog"), per_class=5, splits=("photos",))  # photos/<class>/*.jpg
    info = dataset_info("folder", root, validation_fraction=0.4)
    assert (info.num_classes, info.splits) == (2, {"train": 6, "validation": 4})
    train_x, train_y = collect(make_dataset("folder", "train", 1, training=False, data_dir=root, image_size=12,
                                            validation_fraction=0.4))
    val_x, val_y = collect(make_dataset("folder", "validation", 1, training=False, data_dir=root, image_size=12,
                                        validation_fraction=0.4))
    assert sorted(train_y) == [0, 0, 0, 1, 1, 1] and sorted(val_y) == [0, 0, 1, 1]
    assert not any(np.array_equal(a, b) for a in train_x for b in val_x)  # disjoint
    again = collect(make_dataset("folder", "validation", 1, training=False, data_dir=root, image_size=12,
                                 validation_fraction=0.4))[0]
    np.testing.assert_array_equal(again, val_x)  # the same images every time


def test_tfds_download_path_imports_and_reaches_the_network_call(tmp_path, monkeypatch):
    requests = pytest.importorskip("requests")
    pytest.importorskip("tensorflow_datasets")
    pins = (pathlib.Path(__file__).resolve().parents[1] / "requirements.txt").read_text().split()
    assert any(pin.startswith("importlib_resources==") for pin in pins)
    fetched = []

    def no_network(self, url, **kwargs):
        fetched.append(url)
        raise requests.exceptions.ConnectionError(f"no network in this test: {url}")

    monkeypatch.setattr(requests.Session, "get", no_network)
    monkeypatch.setattr(tfds_source, "can_reach", lambda url: True)  # the probe passes, the download fails
    with pytest.raises(DataError) as excinfo:
        make_dataset("cifar10", "train", 2, training=True, data_dir=tmp_path)
    assert fetched == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]  # got as far as the download
    assert_one_line_naming(excinfo, tmp_path, "ConnectionError: no network in this test", "tfds build")
    assert "ModuleNotFoundError" not in str(excinfo.value)
