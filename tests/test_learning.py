"""A model that learns on the user's data, and says so when it does not (issue 30): precise BatchNorm
statistics, the batch of a small dataset, data refused before any work, and the lines that name
chance, a constant predictor and overfitting.
"""

import numpy as np
import pytest
import tf_keras as keras

from mobilenets import learning
from mobilenets.errors import ConfigError
from mobilenets.evaluation import learning_warnings
from mobilenets.training.precise_bn import BatchNormStatistics
from mobilenets.training.settings import resolve_config
from userdata import assert_ok, assert_one_line_error, run_cli, write_npz, write_photos


def conv_bn_model(momentum=0.99):
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    outputs = keras.layers.BatchNormalization(momentum=momentum, name="bn")(features)
    return keras.Model(inputs, outputs)


def test_precise_bn_sets_the_average_of_the_batch_statistics():
    model = conv_bn_model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(i, 1 + i, (5, 8, 8, 3)).astype(np.float32) for i in range(3)]
    BatchNormStatistics(model).recompute(batches)
    conv = model.get_layer("conv")
    features = [conv(batch).numpy().reshape(-1, 4) for batch in batches]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([f.mean(0) for f in features], 0), rtol=1e-4, atol=1e-5)
    # Keras' fused BatchNorm keeps the unbiased batch variance as its moving statistic
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([f.var(0, ddof=1) for f in features], 0),
                               rtol=1e-3)
    assert bn.momentum == 0.99  # given back


def test_a_frozen_batch_norm_keeps_its_statistics():
    model = conv_bn_model()
    bn = model.get_layer("bn")
    before = [w.numpy().copy() for w in (bn.moving_mean, bn.moving_variance)]
    bn.trainable = False  # a fine-tuning backbone: inference mode
    BatchNormStatistics(model).recompute([np.ones((2, 8, 8, 3), np.float32) * 50])
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), before[1])


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    """4 classes x 80 photos: 256 training images at the default split (the issue's folder)."""
    return write_photos(tmp_path_factory.mktemp("small") / "photos", classes=("a", "b", "c", "d"), per_class=80,
                        size=8, bad_file=False)


def test_a_small_dataset_gets_a_batch_that_gives_it_steps(small_folder):
    lines = []
    config = resolve_config("mobilenetv2", overrides=["data.dataset=folder", f"data.data_dir={small_folder}"],
                            log=lines.append)
    assert (config.schedule.batch_size, config.optimizer.lr) == (16, pytest.approx(0.025))  # 64 and 0.1 scaled
    assert lines == ["256 training images: batch 16 instead of 64 (16 steps an epoch instead of 4), learning rate "
                     "0.025; --batch-size and --lr set them"]
    kept = resolve_config("mobilenetv2", overrides=["data.dataset=folder", f"data.data_dir={small_folder}",
                                                    "schedule.batch_size=64"])
    assert (kept.schedule.batch_size, kept.optimizer.lr) == (64, 0.1)  # what the command sets stays
    rate = resolve_config("mobilenetv2", overrides=["data.dataset=folder", f"data.data_dir={small_folder}",
                                                    "optimizer.lr=0.05"])
    assert (rate.schedule.batch_size, rate.optimizer.lr) == (16, 0.05)


def test_data_smaller_than_a_batch_gets_the_largest_batch_it_fills(tmp_path):
    photos = write_photos(tmp_path / "photos", per_class=6, size=8, bad_file=False)  # 15 training photos
    config = resolve_config(preset="finetune", overrides=[f"data.data_dir={photos}", "model.name=mobilenetv2"])
    assert config.schedule.batch_size == 8  # the preset's 32 halved until one batch fits


def test_an_npz_file_holds_out_its_share_and_fits_its_batch(tmp_path):
    data = write_npz(tmp_path / "a.npz", n=200, size=8, num_classes=4)
    config = resolve_config("mobilenetv2", overrides=["data.dataset=npz", f"data.data_dir={data}"])
    assert config.data.validation_fraction == 0.15  # the README's npz row
    assert config.schedule.batch_size == 16  # 170 training images: 2 steps at 64, 10 at 16 (the smallest batch)


def test_data_that_cannot_train_a_classifier_is_refused_before_any_work(tmp_path):
    one = write_photos(tmp_path / "one", classes=("cat",), per_class=6, bad_file=False)
    with pytest.raises(ConfigError, match="holds one class folder of images .cat.: a classifier needs at least two"):
        resolve_config("mobilenetv2", overrides=["data.dataset=folder", f"data.data_dir={one}"])
    tiny = write_photos(tmp_path / "tiny", classes=("cat", "dog"), per_class=6, bad_file=False)
    for extra in (tiny / "dog").glob("img_00[2-5]*"):
        extra.unlink()
    with pytest.raises(ConfigError, match="class 'dog' of .* has 2 images, too few to hold out .*at least 3"):
        resolve_config("mobilenetv2", overrides=["data.dataset=folder", f"data.data_dir={tiny}"])
    np.savez(tmp_path / "one.npz", x=np.zeros((10, 8, 8, 3), np.uint8), y=np.zeros(10, np.int64))
    with pytest.raises(ConfigError, match="holds one class"):
        resolve_config("mobilenetv2", overrides=["data.dataset=npz", f"data.data_dir={tmp_path / 'one.npz'}"])
    # from the command line: one line, nothing written
    result = run_cli("train.py", "--model", "mobilenetv2", "--dataset", "folder", "--data-dir", one,
                     "--run-dir", tmp_path / "run")
    assert_one_line_error(result, "one class", "at least two classes")
    assert not (tmp_path / "run").exists()


def test_chance_and_its_band():
    assert learning.chance(4) == 0.25
    assert learning.chance_band(4, 64) == pytest.approx(0.25 + 2 * np.sqrt(0.25 * 0.75 / 64))
    assert learning.chance_band(10, 100_000) == pytest.approx(0.12)  # never closer than CHANCE_MARGIN
    assert learning.at_chance(0.30, 4, 64) and not learning.at_chance(0.40, 4, 64)
    assert learning.chance_warning(0.6, 4, 64) is None
    assert learning.chance_warning(0.66, 3, 3).startswith("note: 3 held-out images are too few to tell")
    line = learning.chance_warning(0.25, 4, 64)
    assert "chance" in line and "\n" not in line and "--epochs" in line and "--weights" in line


def test_a_constant_predictor_and_overfitting_are_named():
    confusion = np.array([[9, 1, 0], [8, 2, 0], [9, 0, 1]])  # 'daisy' for 26 of 30 images
    metrics = type("Metrics", (), {"confusion": confusion, "top1": 0.4, "num_images": 30})()
    lines = learning_warnings(metrics, ["daisy", "rose", "tulip"], trained_on=False, run_dir=None)
    assert any("87% of the 30 images are predicted as 'daisy'" in line for line in lines), lines
    assert any("at chance" in line for line in lines), lines
    balanced = np.diag([10, 10, 10])
    metrics = type("Metrics", (), {"confusion": balanced, "top1": 1.0, "num_images": 30})()
    assert learning_warnings(metrics, ["daisy", "rose", "tulip"], trained_on=False, run_dir=None) == []
    assert learning.overfitting_warning(0.99, 0.55).startswith("note: training top-1 0.9900 against 0.5500")
    assert learning.overfitting_warning(0.70, 0.60) is None


def test_labels_that_do_not_match_the_images_end_with_a_line_that_says_chance(tmp_path):
    """The issue's bar on generated data: photos whose folders are shuffled against their colours."""
    photos = write_photos(tmp_path / "photos", per_class=20, size=16, bad_file=False)
    files = sorted(photos.rglob("img_*"))
    folders = [path.parent for path in files]
    for path, folder in zip(files, np.random.default_rng(0).permutation(folders)):  # labels shuffled
        path.rename(folder / f"{path.parent.name}_{path.name}")
    result = assert_ok(run_cli(
        "train.py", "--model", "mobilenetv2", "--dataset", "folder", "--data-dir", photos, "--width", "0.35",
        "--epochs", "3", "--run-dir", tmp_path / "run", "--set", "model.input_size=16", "--verbose", "0"))
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("warning: validation top-1 of the last epoch") and "at chance" in last, result.stdout
    assert "(chance 0.3333, 3 classes)" in result.stdout
