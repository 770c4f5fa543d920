"""Every model as a backbone: include_top=False (keras.applications) and features_only (timm).

The feature maps' channels are checked against timm's feature_info for every registered model
(from the tables, no model built); built backbones (width 0.35, 64x64, ImageNet strides) against
those, against their classifier on the same weights, against keras.applications' no-top models,
and through LGC condensation and conversion, a run's weights and the .tflite export.
"""

import functools
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mobilenets import build_model
from mobilenets.commands import export as export_tflite
from mobilenets.deploy import metadata as tflite_metadata
from mobilenets.deploy.convert import convert_learned_group_model
from mobilenets.deploy.export import export, format_report, read_metadata
from mobilenets.deploy.folding import fold_hard_swish_scale
from mobilenets.deploy.runtime import TFLitePredictor
from mobilenets.errors import ModelError
from mobilenets.models.builder import architecture, trunk
from mobilenets.models.condensation import condense
from mobilenets.models.pretrained import keras_application, transfer_weights
from mobilenets.models.registry import feature_maps, get_entry, list_models
from mobilenets.training.precise_bn import recompute_batch_norm_statistics
from mobilenets.training.starting_weights import load_starting_weights
from models_under_test import models_under_test
from support import random_pixels, write_run

# Channels of the maps at strides 2, 4, 8, 16, 32 at width 1.0: timm 1.0's feature_info
# (mobilenetv1_100, mobilenetv2_100, mobilenetv3_*_100, mobilenetv4_*); the GC / LGC MobileNetV2s
# and IGCV3-D have MobileNetV2's stage widths.
V2_FAMILY = (16, 24, 32, 96, 320)
FEATURE_CHANNELS = {
    "mobilenetv1": (64, 128, 256, 512, 1024),
    "mobilenetv2": V2_FAMILY,
    "mobilenetv2_gc": V2_FAMILY,
    "mobilenetv2_lgc": V2_FAMILY,
    "mobilenetv2_lgc_proj": V2_FAMILY,
    "mobilenetv2_gc_lgc": V2_FAMILY,
    "igcv3": V2_FAMILY,
    "mobilenetv3_large": (16, 24, 40, 112, 960),
    "mobilenetv3_large_minimalistic": (16, 24, 40, 112, 960),
    "mobilenetv3_small": (16, 16, 24, 48, 576),
    "mobilenetv3_small_minimalistic": (16, 16, 24, 48, 576),
    "mobilenetv4_conv_small": (32, 32, 64, 96, 960),
    "mobilenetv4_conv_medium": (32, 48, 80, 160, 960),
    "mobilenetv4_conv_large": (24, 48, 96, 192, 960),
    "mobilenetv4_hybrid_medium": (32, 48, 80, 160, 960),
    "mobilenetv4_hybrid_large": (24, 48, 96, 192, 960),
}
WIDTH, SIDE = 0.35, 64
BACKBONE = {"width_multiplier": WIDTH, "input_shape": (SIDE, SIDE, 3)}


def test_every_model_has_the_documented_feature_maps():
    assert sorted(FEATURE_CHANNELS) == list_models()
    for name, channels in FEATURE_CHANNELS.items():
        maps = feature_maps(name)
        assert [(m.name, m.stride, m.channels) for m in maps] == [
            (f"stride_{2 ** (i + 1)}", 2 ** (i + 1), c) for i, c in enumerate(channels)], name
        # CIFAR: stem and the next two downsamplings at stride 1; the same stages end at strides 1, 2, 4
        assert [(m.stride, m.channels) for m in feature_maps(name, config="cifar")] == [
            (1, channels[2]), (2, channels[3]), (4, channels[4])], name


def features(model, images):
    """{name: array} of a features_only backbone."""
    return {name: value.numpy() for name, value in model(images, training=False).items()}


@pytest.mark.parametrize("name", models_under_test())
def test_backbone_shapes_names_and_channels(name):
    """include_top=False: the trunk's last map, pooled or not; its layers hold the feature maps (built
    features_only: the other tests)."""
    pooling = (None, "avg", "max")[list_models().index(name) % 3]  # each pooling on a third of the models
    top_free = build_model(name, include_top=False, pooling=pooling, **BACKBONE)
    entry = get_entry(name)
    last = trunk(architecture(entry.arch, minimal=entry.minimal), WIDTH)[-1]  # V2's 1280 head conv, V3's = maps[-1]
    assert last.name == top_free.layers[-1 if pooling is None else -2].name
    assert "logits" not in [layer.name for layer in top_free.layers]
    spatial = (SIDE // 32, SIDE // 32) if pooling is None else ()
    assert top_free(random_pixels(1, side=SIDE)).shape == (1, *spatial, last.channels)
    for m in feature_maps(name, WIDTH):
        assert top_free.get_layer(m.layer).output.shape == (None, SIDE // m.stride, SIDE // m.stride, m.channels)


def test_out_indices_pick_maps_and_bad_options_are_one_line_errors():
    picked = build_model("mobilenetv3_small", features_only=True, out_indices=(3, 1), **BACKBONE)
    assert list(picked.output_shape) == ["stride_4", "stride_16"]
    assert picked.layers[-1].name == "block_7"  # the trunk ends at the deepest map asked for
    bad = [
        (dict(features_only=True, out_indices=(5,)), "in 0..4 (mobilenetv2 has 5 feature maps, at strides 2, 4, 8"),
        (dict(features_only=True, out_indices=(3,), config="cifar"), "in 0..2 (mobilenetv2 has 3 feature maps, at "
                                                                     "strides 1, 2, 4)"),
        (dict(features_only=True, out_indices=(1, 1)), "distinct indices"),
        (dict(features_only=True, out_indices=()), "distinct indices"),
        (dict(features_only=True, out_indices="01"), "distinct indices"),
        (dict(out_indices=(1,)), "features_only=True"),
        (dict(pooling="avg"), "include_top=False"),
        (dict(include_top=False, pooling="sum"), "'avg' or 'max'"),
    ]
    for options, message in bad:
        with pytest.raises(ModelError) as error:
            build_model("mobilenetv2", **{"width_multiplier": WIDTH, **options})
        assert message in str(error.value) and "\n" not in str(error.value), options


def test_a_classifier_and_its_backbones_compute_the_same_features():
    """Same names, same layers: the classifier's weights load into its backbones, which compute its features."""
    keras.utils.set_random_seed(0)
    classifier = build_model("mobilenetv3_small", num_classes=10, **BACKBONE)
    images = random_pixels(2, side=SIDE)
    recompute_batch_norm_statistics(classifier, images)
    maps = feature_maps("mobilenetv3_small", WIDTH)  # its stem and head conv are maps: both ends of the trunk
    inside = keras.Model(classifier.input, [classifier.get_layer(m.layer).output for m in maps])
    backbone = build_model("mobilenetv3_small", features_only=True, **BACKBONE)
    pooled = build_model("mobilenetv3_small", include_top=False, pooling="max", **BACKBONE)
    for model in (backbone, pooled):
        transfer_weights(classifier, model)
    expected = [value.numpy() for value in inside(images, training=False)]
    for m, value in zip(maps, expected):
        np.testing.assert_array_equal(features(backbone, images)[m.name], value)
    np.testing.assert_array_equal(pooled(images, training=False), expected[-1].max(axis=(1, 2)))
    # int8 exports fold h-swish's 1/6 into the next kernels: a returned map, pooled or not, keeps its value
    folded = pooled(images, training=False).numpy()
    np.testing.assert_allclose(fold_hard_swish_scale(pooled)(images, training=False), folded, atol=1e-5 * folded.max())


def test_a_condensed_lgc_backbone_converts_to_the_same_features_and_exports(tmp_path):
    """The converted form keeps every returned map in the masked model's channel order (no gather added);
    its float32 file too (CIFAR configuration: maps at strides 1, 2 and 4)."""
    keras.utils.set_random_seed(0)
    backbone = build_model("mobilenetv2_lgc", features_only=True, config="cifar", width_multiplier=WIDTH)
    while condense(backbone):
        pass
    images = random_pixels(4)
    recompute_batch_norm_statistics(backbone, images)
    converted = convert_learned_group_model(backbone)
    expected, got = features(backbone, images), features(converted, images)
    assert list(got) == ["stride_1", "stride_2", "stride_4"]
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5 * np.abs(expected[name]).max())
    report = export(converted, tmp_path / "lgc.tflite", parity_images=4, latency_runs=2)  # parity: export's own
    assert report.undelegated == {} and report.outputs == list(expected) and "GATHER" not in report.ops


def test_a_backbones_outputs_are_in_stride_order_wherever_they_are_read_by_position():
    """Keras flattens a dict of outputs in the sorted order of its keys (stride_16 before stride_2): model.outputs,
    output_names and a flattened call keep stride order, also of the LGC model's converted form (a rebuilt model)."""
    keras.utils.set_random_seed(0)
    backbone = build_model("mobilenetv2_lgc", features_only=True, **BACKBONE)
    names = [m.name for m in feature_maps("mobilenetv2_lgc", WIDTH)]
    sides = [(SIDE // m.stride,) * 2 for m in feature_maps("mobilenetv2_lgc", WIDTH)]
    converted = convert_learned_group_model(backbone, condense_remaining=True)
    for model in (backbone, converted):
        assert [tuple(output.shape[1:3]) for output in model.outputs] == sides
        assert model.output_names == [m.layer for m in feature_maps("mobilenetv2_lgc", WIDTH)]
        maps = model(random_pixels(1, side=SIDE), training=False)
        assert list(maps) == names
        assert [tuple(value.shape[1:3]) for value in tf.nest.flatten(maps)] == sides


def test_a_keras_applications_no_top_file_loads_into_include_top_false(tmp_path):
    """keras.applications' _no_top files hold what include_top=False builds (for V3: its head conv, Conv_1)."""
    reference = keras_application("mobilenetv3_small", 0.75, (SIDE, SIDE, 3), include_top=False)
    randomize_batch_norm_statistics(reference)
    path = str(tmp_path / "weights_mobilenet_v3_small_no_top.h5")
    reference.save_weights(path)
    images = random_pixels(2, side=SIDE)
    expected = reference(images, training=False).numpy()  # V3 rescales its raw pixels inside, as ours do
    top_free = build_model("mobilenetv3_small", include_top=False, weights=path, width_multiplier=0.75,
                           input_shape=(SIDE, SIDE, 3))
    np.testing.assert_allclose(top_free(images, training=False), expected, atol=1e-5 * np.abs(expected).max())


def randomize_batch_norm_statistics(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])


def test_a_run_starts_a_backbone_and_exports_as_one(tmp_path, capsys):
    """--weights RUN_DIR (starting_weights) and `export RUN_DIR --features-only` take the run's trunk."""
    keras.utils.set_random_seed(0)
    spec = dict(name="mobilenetv1", num_classes=10, config="cifar", width_multiplier=WIDTH)
    classifier = build_model(**spec)
    images = random_pixels(4)
    recompute_batch_norm_statistics(classifier, images)
    write_run(tmp_path / "run", classifier, spec)
    backbone = build_model("mobilenetv1", features_only=True, out_indices=(1, 2), config="cifar",
                           width_multiplier=WIDTH)
    load_starting_weights(backbone, "mobilenetv1", str(tmp_path / "run"), WIDTH, (32, 32, 3), 10)
    inside = keras.Model(classifier.input, classifier.get_layer("block_12").output)
    np.testing.assert_array_equal(features(backbone, images)["stride_4"], inside(images, training=False).numpy())

    path = tmp_path / "features.tflite"
    argv = [str(tmp_path / "run"), "-o", str(path), "--features-only", "--out-indices", "1", "2",
            "--parity-images", "4", "--latency-runs", "2"]
    assert export_tflite.main(argv) == 0
    printed = capsys.readouterr().out
    assert "outputs          stride_2, stride_4" in printed and "runs every op" in printed
    assert "no ImageClassifier metadata" in printed
    predictor = TFLitePredictor(str(path), feature_maps=True)
    got = predictor.predict_outputs(images[:1])
    assert [output["name"] for output in predictor.outputs] == ["stride_2", "stride_4"]
    expected = features(backbone, images[:1])["stride_4"]
    np.testing.assert_allclose(got[1], expected, atol=1e-4 * np.abs(expected).max())  # export.FLOAT32_TOLERANCE


# The deep models' maps up to stride 4 (IGCV3: the block after the stem, whose input shuffle the stem takes, and
# the next stage) or 16 (the hybrid: its first attention blocks): a shallower trunk to build and convert.
OUT_INDICES = {"igcv3": (0, 1), "mobilenetv4_hybrid_large": (0, 1, 2, 3)}


@functools.lru_cache(maxsize=None)
def calibrated_backbone(name):
    """A features_only backbone with BatchNorm statistics from a batch (int8 ranges as a trained model's),
    LGC masks condensed (it exports converted)."""
    keras.utils.set_random_seed(0)
    backbone = build_model(name, features_only=True, out_indices=OUT_INDICES.get(name), **BACKBONE)
    while condense(backbone):
        pass
    return recompute_batch_norm_statistics(backbone, random_pixels(8, side=SIDE, seed=1))


def exported_backbones():
    """(model, quantization) pairs exported: every model in float32 and int8 with MOBILENETS_EVERY_MODEL=1
    (benchmarks/every_model.py); else one of each deployed form whose graph changes around the returned maps:
    h-swish folded up to the returned stem and head conv (int8), IGCV3 unshuffled (int8: dense), attention
    kept in float32 with GELU decomposed (int8); converted LGC: test_a_condensed_lgc_backbone_converts_...."""
    if os.environ.get("MOBILENETS_EVERY_MODEL"):
        return [(name, quantize) for name in list_models() for quantize in ("none", "int8")]
    return [("mobilenetv3_small", "int8"), ("igcv3", "int8"), ("mobilenetv4_hybrid_large", "int8")]


@pytest.mark.parametrize("name,quantize", exported_backbones())
def test_backbones_export_with_every_op_in_xnnpack(name, quantize, tmp_path):
    backbone = calibrated_backbone(name)
    maps = [m for index, m in enumerate(feature_maps(name, WIDTH)) if index in OUT_INDICES.get(name, range(5))]
    path = tmp_path / f"{quantize}.tflite"
    report = export(backbone, path, quantize=quantize, representative_data="synthetic", calibration_images=16,
                    parity_images=4, latency_runs=2)
    assert report.undelegated == {}, f"{name} {quantize}: {report.undelegated}\n{format_report(report)}"
    assert report.outputs == [m.name for m in maps] and report.parity.top1_agreement is None
    attention = name.startswith("mobilenetv4_hybrid")  # softmax of the attention, in float32
    assert not {"GATHER", "TRANSPOSE", *([] if attention else ["SOFTMAX"])} & set(report.ops)
    predictor = TFLitePredictor(str(path), feature_maps=True)
    assert [(o["name"], tuple(o["shape"][1:])) for o in predictor.outputs] == [
        (m.name, (SIDE // m.stride, SIDE // m.stride, m.channels)) for m in maps]
    assert tflite_metadata.read(str(path)) is None  # no ImageClassifier metadata: a backbone has no classes
    described = read_metadata(str(path))
    sidecar = json.loads((tmp_path / f"{quantize}.tflite.json").read_text())
    assert [o["name"] for o in described["outputs"]] == [o["name"] for o in sidecar["outputs"]] == report.outputs
    assert described["labels"] is None and "output" not in described
