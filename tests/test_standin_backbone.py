"""The stand-in backbones of tests/fixtures/standin/ (benchmarks/standin_backbone.py, which says how they were
trained): offline substitutes for ImageNet weights that learned something. Each loads through the path
train.py takes (keras.applications' *_no_top.h5 layout; timm's model.safetensors + config.json), the timm
writer is the exact inverse of the reader and names every tensor as timm does, a tampered file changes
the outputs or is refused, and fine-tuning from either on classes it never saw (generated shapes) beats
training from scratch for the same steps, on held-out images, through the trainer and the finetune preset.
"""

import importlib.util
import shutil

import h5py
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from mobilenets.errors import CheckpointError
from mobilenets.models import timm_weights
from mobilenets.models.registry import build_model
from mobilenets.training import train
from mobilenets.training.settings import resolve_config
from mobilenets.training.starting_weights import load_starting_weights
from userdata import REPO

FIXTURES = REPO / "tests" / "fixtures" / "standin"
TIMM_WRITTEN = REPO / "tests" / "fixtures" / "timm" / "mobilenetv4_conv_small" / "model.safetensors"  # by timm itself


def load_script():
    spec = importlib.util.spec_from_file_location("standin_backbone", REPO / "benchmarks" / "standin_backbone.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = load_script()
V2, V4 = "mobilenetv2", standin.V4_NAME
V2_FILE = FIXTURES / standin.V2_FILE
V4_FILE = FIXTURES / standin.V4_DIR / timm_weights.WEIGHTS_FILE
WEIGHTS = {V2: (V2_FILE, standin.V2_WIDTH), V4: (V4_FILE, standin.V4_WIDTH)}
SIDE = standin.SIDE


def pretraining_images(count_per_class=20):
    return standin.make_images(standin.PRETRAIN_CLASSES, count_per_class, seed=7)


def load_v2(model, path):
    """The file's weights into our mobilenetv2 (5 classes) as train.py loads them (load_starting_weights)."""
    return load_starting_weights(model, V2, str(path), standin.V2_WIDTH, (SIDE, SIDE, 3), 5)


def features(model, images):
    """The pooled features before the classifier (the backbone's output the new head sees)."""
    import tf_keras as keras

    pooled = keras.Model(model.input, model.get_layer("logits").input)
    return pooled(images.astype(np.float32), training=False).numpy()


@pytest.fixture(scope="module")
def v2():
    """Our mobilenetv2 of 5 classes (a new classifier) built once; each test loads what it checks."""
    return build_model(V2, num_classes=5, input_shape=(SIDE, SIDE, 3), width_multiplier=standin.V2_WIDTH)


@pytest.fixture(scope="module")
def v4():
    """Our MobileNetV4-Conv-S built from the stand-in (its 10-class classifier too); a test that loads other
    weights into it loads the stand-in's back."""
    return build_model(V4, num_classes=len(standin.PRETRAIN_CLASSES), width_multiplier=standin.V4_WIDTH,
                       weights=str(V4_FILE))


def restore_v4(model):
    timm_weights.load_timm_weights(model, V4, str(V4_FILE), standin.V4_WIDTH)


# ---------------------------------------------------------------- the files


def test_the_fixtures_are_small_and_load_as_trained_weights(v2, v4):
    assert V2_FILE.stat().st_size < 1.2e6 and V4_FILE.stat().st_size < 1.2e6
    # MobileNetV2: keras.applications' no-top layout, taken by the path train.py --weights FILE.h5 takes
    assert load_v2(v2, V2_FILE) == f"keras.applications mobilenetv2 weights {str(V2_FILE)!r} (new classifier)"
    with h5py.File(V2_FILE, "r") as f:
        layers = [name.decode() if isinstance(name, bytes) else name for name in f.attrs["layer_names"]]
        assert layers[:2] == ["input_1", "Conv1"] and layers[-3:] == ["Conv_1", "Conv_1_bn", "out_relu"]
        stem = f["Conv1"]["Conv1"]["kernel:0"][()]
    np.testing.assert_array_equal(v2.get_layer("stem").weights[0].numpy(), stem.astype(np.float32))
    # MobileNetV4: timm's layout; config.json sets the normalization, BatchNorm epsilon, padding and input size
    assert v4.input_shape == (None, SIDE, SIDE, 3)
    assert {layer.epsilon for layer in v4.submodules if hasattr(layer, "moving_variance")} == {1e-5}
    np.testing.assert_allclose(v4.get_layer("normalize").mean, (123.675, 116.28, 103.53))
    # its own classifier of the pretraining classes: it learned them (the script measures 2000 images)
    images, labels = pretraining_images()
    assert np.mean(np.argmax(v4(images.astype(np.float32), training=False), -1) == labels) >= 0.8


def test_timm_writer_is_the_inverse_of_the_reader_and_names_tensors_as_timm(v4, tmp_path):
    again = tmp_path / "again" / timm_weights.WEIGHTS_FILE
    again.parent.mkdir()
    standin.save_timm_weights(v4, str(again))
    fixture, written = load_file(str(V4_FILE)), load_file(str(again))
    assert sorted(written) == sorted(fixture)
    for key, value in fixture.items():  # float16 -> our float32 -> float16: bit for bit
        assert written[key].dtype == value.dtype, key
        assert key.endswith("num_batches_tracked") or np.array_equal(written[key], value), key
    # timm's own checkpoint of the same width and classes (tests/fixtures/timm/): the same names and shapes
    timm_shapes = {key: value.shape for key, value in load_file(str(TIMM_WRITTEN)).items()}
    assert {key: value.shape for key, value in written.items()} == timm_shapes
    # float32 round trip of weights float16 cannot hold: save them, load them over the stand-in's, same logits
    images = pretraining_images(2)[0].astype(np.float32)
    rng = np.random.default_rng(0)
    try:
        for variable in v4.weights:
            variable.assign(variable.numpy() * rng.uniform(0.9, 1.1, variable.shape).astype(np.float32))
        expected = v4(images, training=False).numpy()
        exact = tmp_path / "exact" / timm_weights.WEIGHTS_FILE
        exact.parent.mkdir()
        standin.save_timm_weights(v4, str(exact), dtype=np.float32)
        restore_v4(v4)
        assert not np.array_equal(v4(images, training=False), expected)
        timm_weights.load_timm_weights(v4, V4, str(exact), standin.V4_WIDTH)
        np.testing.assert_array_equal(v4(images, training=False), expected)
    finally:
        restore_v4(v4)


def test_a_tampered_file_changes_the_outputs_or_is_refused(v2, v4, tmp_path):
    images = pretraining_images(1)[0].astype(np.float32)
    # timm: one tensor zeroed changes the logits; one of the wrong shape is refused, naming it
    folder = tmp_path / "v4"
    shutil.copytree(V4_FILE.parent, folder)
    tampered = folder / timm_weights.WEIGHTS_FILE
    tensors = load_file(str(V4_FILE))
    key = "blocks.2.1.dw_mid.conv.weight"
    save_file({**tensors, key: np.zeros_like(tensors[key])}, str(tampered))
    original = v4(images, training=False).numpy()
    try:
        timm_weights.load_timm_weights(v4, V4, str(tampered), standin.V4_WIDTH)
        changed = v4(images, training=False).numpy()
    finally:
        restore_v4(v4)
    assert np.max(np.abs(original - changed)) > 0.1 * np.max(np.abs(original))
    save_file({**tensors, key: tensors[key][1:]}, str(tampered))
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        build_model(V4, num_classes=10, width_multiplier=standin.V4_WIDTH, weights=str(tampered))
    # keras.applications .h5: one kernel zeroed changes the features; a truncated file is refused
    h5 = tmp_path / V2_FILE.name
    shutil.copy(V2_FILE, h5)
    with h5py.File(h5, "r+") as f:
        f["block_5_depthwise"]["block_5_depthwise"]["depthwise_kernel:0"][...] = 0
    load_v2(v2, V2_FILE)
    before = features(v2, images)
    load_v2(v2, h5)
    assert np.max(np.abs(before - features(v2, images))) > 0.1 * np.max(np.abs(before))
    h5.write_bytes(V2_FILE.read_bytes()[:V2_FILE.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a Keras .h5 weights file|truncated or corrupt"):
        load_v2(v2, h5)


# ---------------------------------------------------------------- transfer to new classes


NEW_PER_CLASS, BATCH, EPOCHS, HEAD_EPOCHS, LR = 40, 16, 4, 2, 1e-3  # 200 training images: 4 x 12 steps


@pytest.fixture(scope="module")
def new_classes(tmp_path_factory):
    """An npz of the shapes no stand-in saw (standin_backbone.NEW_CLASSES), half of it held out."""
    x, y = standin.make_images(standin.NEW_CLASSES, 2 * NEW_PER_CLASS, seed=100)
    path = tmp_path_factory.mktemp("new") / "new_classes.npz"
    np.savez(path, x=x, y=y)
    return path


def run(name, data, run_dir, *overrides):
    """The finetune preset as train.py resolves it (resolve_config: timm's config.json sets how the model is
    built), on the npz, validated once on its held-out half (after precise BatchNorm statistics)."""
    _, width = WEIGHTS[name]
    config = resolve_config(preset="finetune", overrides=[
        f"model.name={name}", f"model.width_multiplier={width}", f"model.input_size={SIDE}", "data.dataset=npz",
        f"data.data_dir={data}", "data.validation_fraction=0.5", "data.augmentation=none",
        "data.eval_crop_fraction=1.0",
        f"schedule.batch_size={BATCH}", f"schedule.epochs={EPOCHS}", f"optimizer.lr={LR}", "run.eval_every=100",
        "run.checkpoint_every=100", "run.seed=0", f"run.run_dir={run_dir}", *overrides])
    lines = []
    result = train(config, verbose=0, log=lines.append)
    return result, lines


@pytest.mark.parametrize("name", [V2, V4])
def test_finetuning_a_standin_beats_training_from_scratch_on_new_classes(name, new_classes, tmp_path):
    weights, _ = WEIGHTS[name]
    tuned, lines = run(name, new_classes, tmp_path / "finetune", f"model.weights={weights}",
                       f"finetune.head_epochs={HEAD_EPOCHS}")
    scratch, _ = run(name, new_classes, tmp_path / "scratch", "model.weights=null", "finetune.head_epochs=0")
    assert any(line.startswith("starting from") and str(weights) in line for line in lines), lines
    assert any("phase 2 from epoch 3: training every layer" in line for line in lines), lines
    assert tuned.validation_examples == scratch.validation_examples == 5 * NEW_PER_CLASS
    finetuned, from_scratch = tuned.last("val_accuracy"), scratch.last("val_accuracy")
    print(f"{name}: held-out top-1 {finetuned:.3f} fine-tuned from the stand-in, {from_scratch:.3f} from scratch")
    assert finetuned >= 0.5 and finetuned - from_scratch >= 0.25, (finetuned, from_scratch)
