"""timm's weights in our MobileNetV4s / V3s (mobilenets.models.timm_weights), no torch here: the
checkpoints in tests/fixtures/timm/ are timm models of random weights and BatchNorm statistics (width
0.25, 10 classes, 64x64, written by benchmarks/timm_reference.py --fixtures, which checks all seven
models at full size), each with timm's own logits and features_only maps on three photos. train.py
--weights FILE, end to end: journey (d) in test_journeys.py."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from mobilenets.errors import CheckpointError, ConfigError
from mobilenets.models import timm_weights
from mobilenets.models.registry import build_model
from userdata import assert_one_line_error, run_without_tensorflow, write_npz

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "timm"
MODELS = ("mobilenetv4_conv_small", "mobilenetv4_hybrid_medium", "mobilenetv3_small")  # every timm block type
WIDTH, CLASSES, SIDE = 0.25, 10, 64


def weights_of(name):
    return str(FIXTURES / name / "model.safetensors")


def reference(name):
    with np.load(FIXTURES / name / "reference.npz") as arrays:
        return dict(arrays)


def relative_error(ours, theirs):
    """max |ours - theirs| over max |theirs|."""
    return float(np.max(np.abs(np.asarray(ours) - theirs)) / np.max(np.abs(theirs)))


@pytest.fixture(scope="module")
def loaded():
    """name -> our classifier built from the fixture checkpoint (built once per module)."""
    models = {}

    def get(name):
        if name not in models:
            models[name] = build_model(name, num_classes=CLASSES, width_multiplier=WIDTH, weights=weights_of(name))
        return models[name]

    return get


def logits_error(model, name):
    expected = reference(name)
    return relative_error(model(expected["images"].astype(np.float32), training=False), expected["logits"])


@pytest.mark.parametrize("name", MODELS)
def test_logits_equal_timms(loaded, name):
    model = loaded(name)
    assert model.input_shape == (None, SIDE, SIDE, 3)  # pretrained_cfg.input_size of the config.json beside it
    normalize = model.get_layer("normalize")  # timm's ImageNet mean / std, in raw pixels
    np.testing.assert_allclose(normalize.mean, (123.675, 116.28, 103.53))
    np.testing.assert_allclose(normalize.std, (58.395, 57.12, 57.375))
    assert {layer.epsilon for layer in model.submodules if hasattr(layer, "moving_variance")} == {1e-5}
    assert logits_error(model, name) < 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_features_only_maps_equal_timms(name):
    expected = reference(name)
    backbone = build_model(name, width_multiplier=WIDTH, weights=weights_of(name), features_only=True)
    maps = backbone(expected["images"].astype(np.float32), training=False)
    assert list(maps) == [f"stride_{s}" for s in expected["strides"]] == [f"stride_{2 ** i}" for i in range(1, 6)]
    for index, stride in enumerate(expected["strides"]):
        assert relative_error(maps[f"stride_{stride}"], expected[f"feature_{index}"]) < 1e-3, stride


def test_the_phone_graphs_keep_timms_padding(loaded, tmp_path):
    """The symmetric padding (an explicit pad before each strided conv) survives conversion and the flat
    graph of quantize-aware training: both give timm's logits."""
    from mobilenets.deploy.export import convert
    from mobilenets.deploy.flatten import flatten
    from mobilenets.deploy.runtime import TFLitePredictor

    name = "mobilenetv4_conv_small"
    path = tmp_path / "timm.tflite"
    path.write_bytes(convert(loaded(name)))
    expected = reference(name)
    images = expected["images"].astype(np.float32)
    assert relative_error(TFLitePredictor(str(path)).predict(images), expected["logits"]) < 1e-4
    assert relative_error(flatten(loaded(name))(images, training=False), expected["logits"]) < 1e-4


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_the_checkpoints_per_channel_normalization_is_one_depthwise_conv_on_the_phone(loaded, quantize, tmp_path):
    """ImageNet's mean / std differ per channel: as a MUL and an ADD broadcast over 3 channels XNNPACK ran them
    1.8x slower in int8; the file holds one 1x1 DEPTHWISE_CONV_2D reading the input instead, and no MUL
    (Conv-S has none of its own)."""
    from tensorflow.lite.tools import flatbuffer_utils

    from mobilenets.deploy.litert import op_labels
    from support import calibrated_export

    path = tmp_path / f"{quantize}.tflite"
    report = calibrated_export(loaded("mobilenetv4_conv_small"), path, quantize=quantize, images=16, parity_images=64,
                               logits=True)
    assert report.undelegated == {} and "MUL" not in report.ops
    labels = op_labels(flatbuffer_utils.read_model(str(path)))
    assert labels[labels[0] == "QUANTIZE"] == "DEPTHWISE_CONV_2D"  # int8: after the input's QUANTIZE
    if quantize == "none":
        assert report.parity.relative_diff < 1e-4  # exact: the same products and sums as before
    else:  # The int8 file against the float model on 64 synthetic images the calibration did not read. Random
        # weights give logits of +-400 whose top ones lie close together: 62% top-1 agreement (chance 10%), logit
        # correlation 0.984; a file calibrated wrongly or computing another graph scores about 0.1 and 0.
        assert report.parity.images == 64 and report.parity.output == "logits"
        assert report.parity.top1_agreement >= 0.5 and report.parity.logit_correlation >= 0.95, report.parity


def test_a_tensor_mapped_wrong_fails_the_logit_check(loaded, tmp_path):
    """The logit check above catches a swapped pair of statistics or a transposed depthwise kernel
    (same shapes: only the values tell), and the key/shape check a transposed pointwise kernel."""
    from safetensors.numpy import load_file, save_file

    name = "mobilenetv4_conv_small"
    model, tensors = loaded(name), load_file(weights_of(name))
    bn, dw = "blocks.2.0.dw_start.bn", "blocks.2.0.dw_start.conv.weight"  # a 5x5 depthwise and its BatchNorm
    swapped = {**tensors, f"{bn}.running_mean": tensors[f"{bn}.running_var"], f"{bn}.running_var": tensors[f"{bn}.running_mean"]}
    transposed = {**tensors, dw: tensors[dw].transpose(0, 1, 3, 2).copy()}
    pointwise = "blocks.2.0.pw_exp.conv.weight"
    wrong_shape = {**tensors, pointwise: tensors[pointwise].transpose(1, 0, 2, 3).copy()}
    try:
        for tampered in (swapped, transposed):
            path = tmp_path / "tampered.safetensors"
            save_file(tampered, str(path))
            timm_weights.load_timm_weights(model, name, str(path), WIDTH)
            assert not logits_error(model, name) < 1e-4  # (a swapped mean can be a negative variance: NaN)
        save_file(wrong_shape, str(tmp_path / "wrong.safetensors"))
        with pytest.raises(CheckpointError, match=rf"its {pointwise} is \(16, 48, 1, 1\) where this model has \(48, 16"):
            timm_weights.load_timm_weights(model, name, str(tmp_path / "wrong.safetensors"), WIDTH)
    finally:
        timm_weights.load_timm_weights(model, name, weights_of(name), WIDTH)
    assert logits_error(model, name) < 1e-4


def test_a_file_of_another_width_or_model_names_the_one_it_fits(loaded, tmp_path):
    bare = tmp_path / "x.safetensors"  # no config.json beside it: told apart by its tensors alone
    shutil.copy(weights_of("mobilenetv4_conv_small"), bare)
    shapes = timm_weights.tensor_shapes(str(bare))
    assert timm_weights.mismatch("x.safetensors", shapes, "mobilenetv4_conv_small", 0.5) == (
        "x.safetensors holds mobilenetv4_conv_small weights of width 0.25 (read from its shapes), this model has "
        "width 0.5: add --width 0.25")
    with pytest.raises(CheckpointError, match=r"x.safetensors holds mobilenetv4_conv_small weights of width 0.25, not "
                                              r"mobilenetv4_hybrid_medium: pass --model mobilenetv4_conv_small$"):
        timm_weights.load_timm_weights(loaded("mobilenetv4_hybrid_medium"), "mobilenetv4_hybrid_medium", str(bare), WIDTH)
    assert timm_weights.held_model(timm_weights.tensor_shapes(weights_of("mobilenetv3_small"))) == "mobilenetv3_small"
    # timm's own reduced-width MobileNetV4 keeps a full-width stem (fix_stem), which ours thins: refused
    full_stem = {**shapes, "conv_stem.weight": (32, 3, 3, 3)}
    assert "timm's full-width stem (32 channels" in timm_weights.mismatch("x", full_stem, "mobilenetv4_conv_small", 0.25)


def test_a_model_built_otherwise_than_the_checkpoint_needs_is_refused(loaded):
    """Training's safety net (train.py itself sets these from the checkpoint): a model normalizing or
    padding otherwise would load silently and compute something else."""
    from mobilenets.training.starting_weights import load_starting_weights

    name = "mobilenetv4_conv_small"
    with pytest.raises(CheckpointError, match="needs model.normalization='imagenet'.*--set model.normalization=imagenet"):
        load_starting_weights(loaded(name), name, weights_of(name), WIDTH, (SIDE, SIDE, 3), CLASSES,
                              {"name": name, "normalization": "inception"})
    with pytest.raises(CheckpointError, match="needs model.padding='symmetric'"):
        load_starting_weights(loaded(name), name, weights_of(name), WIDTH, (SIDE, SIDE, 3), CLASSES,
                              {"name": name, "normalization": "imagenet", "bn_epsilon": 1e-5})
    assert load_starting_weights(loaded(name), name, weights_of(name), WIDTH, (SIDE, SIDE, 3), CLASSES,
                                 {"normalization": "imagenet", "bn_epsilon": 1e-5, "padding": "symmetric"}) == (
        f"timm mobilenetv4_conv_small.e2400_r224_in1k weights from {weights_of(name)} (with its classifier)")


def test_an_explicit_argument_the_checkpoint_cannot_take_is_one_line_not_overridden():
    """build_model(weights=<timm file>) builds as the checkpoint was trained; an argument saying otherwise is refused
    (it used to be replaced silently), one saying the same is taken."""
    name = "mobilenetv3_small"
    for argument, message in (({"padding": "same"}, "padding='symmetric'"),
                              ({"normalization": "inception"}, "normalization='imagenet'"),
                              ({"bn_epsilon": 1e-3}, "bn_epsilon=1e-05")):
        with pytest.raises(ConfigError) as error:
            build_model(name, num_classes=CLASSES, width_multiplier=WIDTH, weights=weights_of(name), **argument)
        assert message in str(error.value) and f"drop {next(iter(argument))}=" in str(error.value), str(error.value)
        assert "\n" not in str(error.value)
    model = build_model(name, num_classes=CLASSES, width_multiplier=WIDTH, weights=weights_of(name),
                        padding="symmetric", normalization="imagenet")
    assert logits_error(model, name) < 1e-4


def test_a_run_resumes_after_its_weights_file_moved(tmp_path, monkeypatch, capsys):
    """Ctrl-C after the first epoch, the weights file moved, the same command again: the run resumes from its
    checkpoint, which holds the weights (the command used to read the file again and stop)."""
    from mobilenets.commands import train as train_script
    from mobilenets.training import callbacks

    monkeypatch.chdir(tmp_path)
    shutil.copy(weights_of("mobilenetv3_small"), tmp_path / "w.safetensors")
    write_npz(tmp_path / "images.npz", n=16, num_classes=CLASSES)
    command = ["--preset", "smoke", "--model", "mobilenetv3_small", "--width", str(WIDTH), "--weights", "w.safetensors",
               "--dataset", "npz", "--data-dir", "images.npz", "--epochs", "2", "--batch-size", "8", "--verbose", "0",
               "--set", "model.input_size=32", "--set", "run.checkpoint_every=1", "--set", "run.precise_bn_images=0",
               "--set", "data.validation_fraction=0"]  # no validation: seconds, not 15
    save = callbacks.SaveCheckpoints.on_epoch_end

    def save_then_interrupt(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(callbacks.SaveCheckpoints, "on_epoch_end", save_then_interrupt)
        assert train_script.main(command) == 130
    (tmp_path / "w.safetensors").rename(tmp_path / "moved.safetensors")
    capsys.readouterr()
    assert train_script.main(command) == 0
    printed = capsys.readouterr().out
    assert "resuming after epoch 1" in printed and "done: 2 epochs" in printed, printed


def test_a_bare_file_takes_its_tags_settings(tmp_path):
    """Without config.json: the input size and mean/std of the tag named in its path (a hub cache's
    models--timm--ARCH.TAG folder, say), else of the architecture's default tag."""
    folder = tmp_path / "models--timm--mobilenetv4_conv_small.e3600_r256_in1k" / "snapshots" / "0123"
    folder.mkdir(parents=True)
    shutil.copy(weights_of("mobilenetv4_conv_small"), folder / "model.safetensors")
    checkpoint, settings = timm_weights.prepare(str(folder / "model.safetensors"), "mobilenetv4_conv_small")
    assert (checkpoint.architecture, checkpoint.tag) == ("mobilenetv4_conv_small", "e3600_r256_in1k")
    assert (settings.input_size, settings.normalization, settings.bn_epsilon, settings.padding) == (
        256, "inception", 1e-5, "symmetric")
    bare = tmp_path / "weights.safetensors"
    shutil.copy(weights_of("mobilenetv4_conv_small"), bare)
    assert timm_weights.prepare(str(bare), "mobilenetv4_conv_small")[1].input_size == 224  # e2400_r224_in1k


def test_the_hub_offline_is_one_line_at_once(monkeypatch):
    """HF_HUB_OFFLINE: the cache is looked in, and neither the network probed nor a download tried (huggingface_hub
    retries for half a minute before it gives up)."""
    import huggingface_hub
    from huggingface_hub import errors as hub_errors

    looked_up = []

    def cache_only(repo_id, filename, **kwargs):
        looked_up.append((repo_id, filename, kwargs.get("local_files_only")))
        if not kwargs.get("local_files_only"):
            raise AssertionError(f"a download of {filename} was tried")
        raise hub_errors.LocalEntryNotFoundError(f"{filename} is not in the cache")

    def no_probe(*args, **kwargs):
        raise AssertionError("the network was probed")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cache_only)
    monkeypatch.setattr(timm_weights, "can_connect", no_probe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MOBILENETS_OFFLINE", raising=False)
    with pytest.raises(CheckpointError) as error:
        build_model("mobilenetv4_conv_small", weights="timm/mobilenetv4_conv_small")  # the default tag
    assert "\n" not in str(error.value) and "offline: MOBILENETS_OFFLINE or HF_HUB_OFFLINE is set" in str(error.value)
    assert "https://huggingface.co/timm/mobilenetv4_conv_small.e2400_r224_in1k/resolve/main/model.safetensors" in str(
        error.value)
    assert looked_up == [("timm/mobilenetv4_conv_small.e2400_r224_in1k", "model.safetensors", True)]


def test_bad_weights_on_the_command_line_are_one_line_each(tmp_path):
    """Refused before TensorFlow loads (mobilenets.training.settings): another model's file, a
    truncated file, a hub id offline, a hub id of an architecture timm_weights does not cover."""
    bare, truncated = tmp_path / "x.safetensors", tmp_path / "cut.safetensors"
    shutil.copy(weights_of("mobilenetv4_conv_small"), bare)
    data = bare.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cases = [
        (("--model", "mobilenetv4_hybrid_medium", "--weights", bare),
         ("holds mobilenetv4_conv_small weights of width 0.25, not mobilenetv4_hybrid_medium",
          "--model mobilenetv4_conv_small --width 0.25")),
        (("--model", "mobilenetv4_conv_small", "--weights", truncated), ("cut.safetensors", "truncated or corrupt")),
        (("--model", "mobilenetv4_conv_small", "--weights", "timm/mobilenetv4_conv_small.e2400_r224_in1k"),
         ("https://huggingface.co/timm/mobilenetv4_conv_small.e2400_r224_in1k/resolve/main/model.safetensors",
          "--weights ~/models/timm/mobilenetv4_conv_small.e2400_r224_in1k/model.safetensors")),
        (("--model", "mobilenetv4_conv_small", "--weights", "timm/resnet50.a1_in1k"),
         ("timm/resnet50.a1_in1k is not a timm architecture we load weights for",)),
    ]
    for flags, fragments in cases:
        result = run_without_tensorflow("train.py", *flags, "--dataset", "synthetic", "--run-dir", tmp_path / "run",
                                        env={"MOBILENETS_OFFLINE": "1"})
        assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()
