"""Data directories and weight files as users have them (issue 21): a photo folder given to a CIFAR
run, tfds offline, partial CIFAR copies, photo formats, keras.applications .h5 files and ImageNet
weights offline, and the validation split a flat photo folder gets by default.
"""

import json
import socket
import threading
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from mobilenets import build_model
from mobilenets.data import SkippedImagesWarning, dataset_info, make_dataset, scan_folder, tfds_source
from mobilenets.data.cifar import PartialCopyWarning
from mobilenets.errors import CheckpointError, DataError
from mobilenets.models.pretrained import weight_layers
from mobilenets.training.starting_weights import load_starting_weights
from mobilenets.training.inputs import plan_data
from mobilenets.training.settings import resolve_config
from userdata import (assert_one_line_error, keras_h5, run_cli, tree_snapshot, write_cifar10_binary,
                      write_cifar10_python, write_images_with_pillow, write_photos)

CIFAR100_ARCHIVE = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


def labels_of(dataset):
    return np.concatenate([labels for _, labels in dataset.as_numpy_iterator()])


def raised(error_type, call):
    """The one-line message of the `error_type` that `call()` raises."""
    with pytest.raises(error_type) as excinfo:
        call()
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


@pytest.fixture
def probes(monkeypatch):
    """The URLs the download probe was asked about; every probe finds the network down."""
    asked = []
    monkeypatch.setattr(tfds_source, "can_reach", lambda url: asked.append(url) or False)
    return asked


# ------------------------------------------------- finding 1: data dirs tfds would write into


def test_photo_folder_given_to_a_cifar_run_is_named_and_not_written_into(tmp_path, probes):
    photos = write_photos(tmp_path / "photos")
    before = tree_snapshot(photos)
    expected = f"{photos} looks like a folder of photos (3 class folders): add --dataset folder"
    assert raised(DataError, lambda: dataset_info("cifar100", photos)) == expected
    assert raised(DataError, lambda: make_dataset("cifar100", "train", 8, True, data_dir=photos)) == expected
    assert raised(DataError, lambda: dataset_info("imagenet", photos)) == expected
    assert tree_snapshot(photos) == before
    assert probes == []  # decided from the folder alone


def test_a_folder_of_other_files_is_refused_before_any_download(tmp_path, probes):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("buy milk")
    before = tree_snapshot(notes)
    message = raised(DataError, lambda: dataset_info("cifar100", notes))
    assert f"{notes} holds todo.txt, not a cifar100 copy" in message and CIFAR100_ARCHIVE in message
    assert tree_snapshot(notes) == before and probes == []


def test_offline_cifar_fails_after_one_probe_naming_the_archive_and_writes_nothing(tmp_path, monkeypatch, probes):
    tfds = pytest.importorskip("tensorflow_datasets")

    def download_and_prepare(self, *args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", download_and_prepare)
    home_tfds = tmp_path / "home" / "tensorflow_datasets"
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(home_tfds))  # tfds' default directory
    empty = tmp_path / "cifar"
    empty.mkdir()
    calls = [lambda: dataset_info("cifar100", empty), lambda: dataset_info("cifar100"),
             lambda: make_dataset("cifar100", "train", 8, True, data_dir=empty)]
    for call in calls:
        message = raised(DataError, call)
        assert "cannot reach www.cs.toronto.edu" in message and CIFAR100_ARCHIVE in message
        assert "archive or its extracted folder as --data-dir" in message
    assert probes == [CIFAR100_ARCHIVE] * len(calls)  # one probe each (bounded: the next test), no download
    assert list(empty.iterdir()) == [] and not (tmp_path / "home").exists()


def test_the_probe_answers_within_its_timeout_without_the_internet(monkeypatch):
    monkeypatch.delenv("MOBILENETS_OFFLINE")  # the probe itself, against a port on this machine
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert tfds_source.can_reach(f"https://127.0.0.1:{port}/cifar.tar.gz", timeout=2)
        monkeypatch.setenv("MOBILENETS_OFFLINE", "1")  # an air-gapped machine: not even tried
        assert not tfds_source.can_reach(f"https://127.0.0.1:{port}/cifar.tar.gz", timeout=2)
        monkeypatch.delenv("MOBILENETS_OFFLINE")
    assert not tfds_source.can_reach(f"https://127.0.0.1:{port}/cifar.tar.gz", timeout=2)  # closed now


def test_the_probe_gives_up_on_a_host_that_never_answers_without_waiting_for_it(monkeypatch):
    """A firewall that drops packets (or a name lookup that hangs): the probe returns False at its timeout,
    the connection attempt, bounded by the same timeout, left to a daemon thread."""
    from mobilenets import network

    asked, release, finished = [], threading.Event(), threading.Event()

    def never_answers(address, timeout=None):
        asked.append((address, timeout))
        release.wait(120)  # bounded: a probe that waits for it fails below instead of hanging the suite
        finished.set()
        raise OSError("timed out")

    monkeypatch.setattr(network.socket, "create_connection", never_answers)
    for proxy in ("https_proxy", "HTTPS_PROXY"):  # the probe asks the proxy when there is one
        monkeypatch.delenv(proxy, raising=False)
    try:
        assert not network.can_connect("https://dropped.example:8443/cifar.tar.gz", timeout=0.2)
        assert asked == [(("dropped.example", 8443), 0.2)] and not finished.is_set()  # returned while it hung
    finally:
        release.set()


def test_training_on_a_photo_folder_without_dataset_folder_fails_before_writing(tmp_path):
    photos = write_photos(tmp_path / "photos")
    before = tree_snapshot(photos)
    home = tmp_path / "home"
    home.mkdir()
    result = run_cli("train.py", "--model", "mobilenetv2", "--data-dir", photos, "--run-dir", tmp_path / "run",
                     "--width", "0.35", "--epochs", "1", env={"HOME": str(home)})
    assert_one_line_error(result, f"{photos} looks like a folder of photos (3 class folders): add --dataset folder")
    assert tree_snapshot(photos) == before
    assert not (home / "tensorflow_datasets").exists()
    assert not (tmp_path / "run" / "config.json").exists()


# ------------------------------------------------- finding 2: partial CIFAR copies


def test_a_partial_python_copy_trains_on_the_batches_present(tmp_path):
    data = write_cifar10_python(tmp_path / "cifar10", per_batch=30, test=20)  # data_batch_1 and 2 of 5
    with pytest.warns(PartialCopyWarning, match="lacks data_batch_3, data_batch_4, data_batch_5"):
        info = dataset_info("cifar10", data)
    assert info.splits == {"train": 60, "test": 20}
    labels = labels_of(make_dataset("cifar10", "train", 10, training=False, data_dir=data))
    np.testing.assert_array_equal(labels, np.tile(np.arange(30) % 10, 2))  # both batches, in order
    config = resolve_config("mobilenetv2", overrides=["data.dataset=cifar10", f"data.data_dir={data}",
                                                      "model.num_classes=null", "schedule.batch_size=8"])
    plan = plan_data(config)
    assert (plan.train_examples, plan.steps_per_epoch, plan.validation_split) == (60, 7, "test")


def test_a_partial_binary_copy_trains_on_the_batches_present(tmp_path):
    data = write_cifar10_binary(tmp_path / "bin", per_batch=25, batches=("data_batch_1", "data_batch_4"), test=10)
    with pytest.warns(PartialCopyWarning, match="lacks data_batch_2.bin, data_batch_3.bin, data_batch_5.bin"):
        info = dataset_info("cifar10", data)
    assert info.splits == {"train": 50, "test": 10}
    labels = labels_of(make_dataset("cifar10", "train", 10, training=False, data_dir=data))
    np.testing.assert_array_equal(labels, np.tile(np.arange(25) % 10, 2))


def test_a_copy_without_its_test_batch_says_so(tmp_path):
    data = write_cifar10_python(tmp_path / "cifar10", per_batch=20, test=10)
    (data / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.warns(PartialCopyWarning, match="lacks test_batch"):
        assert dataset_info("cifar10", data).splits == {"train": 40, "test": 0}
    message = raised(DataError, lambda: make_dataset("cifar10", "test", 10, training=False, data_dir=data))
    assert "holds none of the test batches (test_batch)" in message


# ------------------------------------------------- findings 3 and 4: ImageNet weights and .h5 files


def test_imagenet_weights_offline_name_the_file_and_the_flag(monkeypatch):
    from tf_keras.src.utils import data_utils

    tried = []

    def offline_get_file(fname=None, origin=None, *args, **kwargs):  # as Keras fails without network
        tried.append(origin)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_utils, "get_file", offline_get_file)
    model = build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.35)
    message = raised(CheckpointError, lambda: load_starting_weights(model, "mobilenetv2", "imagenet", 0.35, (32, 32, 3), 3))
    assert len(tried) == 1 and tried[0].endswith(".h5")
    assert f"from {tried[0]} (" in message and "pass --weights PATH.h5" in message
    assert "Temporary failure in name resolution" in message


def stored_arrays(path):
    """[[weight arrays] of each layer with weights] of a Keras .h5 weights file, in file order."""
    with h5py.File(path, "r") as f:
        layers = [name.decode() if isinstance(name, bytes) else name for name in f.attrs["layer_names"]]
        return [[np.asarray(f[name][w]) for w in f[name].attrs["weight_names"]] for name in layers
                if len(f[name].attrs["weight_names"])]


def test_a_no_top_file_fine_tunes_new_classes_with_its_backbone(tmp_path):
    path = keras_h5(tmp_path / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5", "mobilenetv2",
                    width=0.35, include_top=False)
    model = build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.35)
    fresh_classifier = [w.copy() for w in weight_layers(model)[-1].get_weights()]
    load_starting_weights(model, "mobilenetv2", str(path), 0.35, (32, 32, 3), 3)
    stored, layers = stored_arrays(path), weight_layers(model)
    assert len(layers) == len(stored) + 1  # the file has every layer but the classifier
    for layer, arrays in zip(layers, stored):
        for value, expected in zip(layer.get_weights(), arrays):
            np.testing.assert_array_equal(value.reshape(expected.shape), expected, err_msg=layer.name)
    for value, fresh in zip(layers[-1].get_weights(), fresh_classifier):
        np.testing.assert_array_equal(value, fresh)

    imagenet_classes = build_model("mobilenetv2", num_classes=1000, input_shape=(32, 32, 3), width_multiplier=0.35)
    message = raised(CheckpointError, lambda: load_starting_weights(imagenet_classes, "mobilenetv2", str(path), 0.35,
                                                              (32, 32, 3), 1000))
    assert "is a no-top mobilenetv2 file (no classifier)" in message and "without _no_top" in message


def test_a_file_of_another_width_names_its_width_and_the_flag(tmp_path):
    path = keras_h5(tmp_path / "mobilenet_v2_0.35.h5", "mobilenetv2", width=0.35)
    model = build_model("mobilenetv2", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.5)
    message = raised(CheckpointError, lambda: load_starting_weights(model, "mobilenetv2", str(path), 0.5, (32, 32, 3), 3))
    assert f"{path} holds mobilenetv2 weights of width 0.35, read from its weight shapes" in message
    assert message.endswith("add --width 0.35")
    assert "mismatch" not in message and "elsewhere" not in message


# ------------------------------------------------- finding 5: photo formats and empty class folders


def test_folder_reads_bmp_gif_webp_counts_what_it_skips_and_names_empty_classes(tmp_path, capfd):
    root = write_photos(tmp_path / "photos", per_class=4, bad_file=False)
    write_images_with_pillow(root / "rose", 1, ("bmp", "gif", "webp"))
    (root / "tulip" / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    (root / "daisy" / "cut.jpg").write_bytes((root / "daisy" / "img_001.jpg").read_bytes()[:20])  # a cut-off copy
    (root / "lily").mkdir()
    (root / ".ipynb_checkpoints").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = scan_folder(root, "train")
    assert scan.class_names == ["daisy", "lily", "rose", "tulip"]
    assert np.bincount(scan.labels, minlength=4).tolist() == [4, 0, 7, 4]
    assert {Path(p).name for p in scan.paths} >= {"photo.bmp", "photo.gif", "photo.webp"}
    assert scan.skipped == [str(root / "daisy" / "cut.jpg")]
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedImagesWarning)]
    assert len(messages) == 2, messages
    assert "class folders without images: lily; each keeps its class id" in messages[0]
    assert "skipped 1 of 16 images" in messages[1] and "skipped 1 .heic file" in messages[1]
    labels = labels_of(make_dataset("folder", "train", 4, training=False, data_dir=root, image_size=16))
    assert np.bincount(labels, minlength=4).tolist() == [4, 0, 7, 4]
    assert "Input file read error" not in capfd.readouterr().err  # libjpeg's line about cut.jpg is held back


# ------------------------------------------------- finding 6: a validation split by default


def test_a_flat_photo_folder_holds_out_a_fifth_for_validation_by_default(tmp_path):
    photos = write_photos(tmp_path / "photos")  # 12 photos per class (13 files in daisy with the broken one)
    folder_run = ["data.dataset=folder", f"data.data_dir={photos}", "schedule.batch_size=8"]
    config = resolve_config("mobilenetv2", overrides=folder_run)
    assert config.to_dict()["data"]["validation_fraction"] == 0.2  # what config.json records
    plan = plan_data(config)
    assert (plan.validation_split, plan.train_examples) == ("validation", 37 - (3 + 2 + 2))

    assert resolve_config("mobilenetv2", overrides=[*folder_run, "data.validation_fraction=0"]
                          ).data.validation_fraction == 0.0
    config_file = tmp_path / "mine.json"
    config_file.write_text(json.dumps({"data": {"dataset": "folder", "data_dir": str(photos),
                                                "validation_fraction": 0}}))
    assert resolve_config("mobilenetv2", config_file=str(config_file)).data.validation_fraction == 0.0
    split = write_photos(tmp_path / "split" / "train", bad_file=False).parent
    write_photos(split / "validation", per_class=2, bad_file=False)
    assert resolve_config("mobilenetv2", overrides=["data.dataset=folder", f"data.data_dir={split}"]
                          ).data.validation_fraction == 0.0
