"""MediaPipe Tasks' ImageClassifier runs our .tflite files as they are (issue 13).

Every export carries the standard TFLite Model Metadata (metadata_schema.fbs):
RGB input with NormalizationOptions for raw 0..255 pixels, probabilities out,
labels packed as labels.txt. Here MediaPipe's Python ImageClassifier loads the
float32, float16, int8 (float I/O), int8 with uint8 I/O and converted-LGC files
of small CIFAR models and classifies generated 32x32 images (already at the
model's size: MediaPipe resizes to it otherwise): same top-1 as Keras (float:
every image; int8: test_export.py's agreement bar), its scores equal to the
LiteRT interpreter's on the same file (MediaPipe's preprocessing is ours), the
label names, scores summing to 1. The metadata is also read back with
mediapipe's own generated schema classes, not ours.

mediapipe 1.2.3 is installed with `pip install --no-deps mediapipe==1.2.3` (see
requirements.txt): without it these tests are skipped on a developer's machine and fail in CI
(CI=true), in one line that says what to install.
"""

import functools
import io
import zipfile

import numpy as np
import pytest

from userdata import MEDIAPIPE_INSTALL, require_module  # noqa: E402

mp = require_module("mediapipe", MEDIAPIPE_INSTALL)
from mediapipe.tasks.metadata import metadata_schema_py_generated as mp_schema  # noqa: E402
from mediapipe.tasks.python import BaseOptions, vision  # noqa: E402

from mobilenets.deploy.export import export  # noqa: E402
from mobilenets.deploy import litert  # noqa: E402
from mobilenets.deploy.runtime import TFLitePredictor  # noqa: E402
from support import condensed_lgc, small_model  # noqa: E402

INT8_AGREEMENT = 0.8  # test_export.test_int8_agrees_with_float_model's bar
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def generated_images(count, seed=0):
    """Smooth random uint8 images (4x4 blocks of color upsampled, plus noise), 32x32 RGB."""
    rng = np.random.default_rng(seed)
    blocks = np.kron(rng.uniform(0, 255, (count, 4, 4, 3)), np.ones((1, 8, 8, 1)))
    return np.clip(blocks + rng.normal(0, 20, blocks.shape), 0, 255).astype(np.uint8)


def mediapipe_scores(path, images):
    """(scores (N, classes) by category index, category names by index) from MediaPipe's ImageClassifier."""
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    rows, names = [], {}
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in images:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            categories = result.classifications[0].categories
            row = np.zeros(len(categories), np.float32)
            for category in categories:
                row[category.index] = category.score
                names[category.index] = category.category_name
            rows.append(row)
    return np.stack(rows), [names[index] for index in range(len(names))]


@functools.lru_cache(maxsize=None)
def exported(tmp_dir, case):
    """(path, model, report) of one export case, built once per session."""
    model = condensed_lgc() if case == "converted lgc" else small_model("mobilenetv1")
    kwargs = {
        "float32": {},
        "float16": {"quantize": "float16"},
        "int8": {"quantize": "int8"},
        "int8 uint8-io": {"quantize": "int8", "uint8_io": True},
        "int8 int8-io": {"quantize": "int8", "int8_io": True},
        "converted lgc": {},
    }[case]
    if "quantize" in kwargs and kwargs["quantize"] == "int8":
        kwargs.update(representative_data="synthetic", calibration_images=32)
    labels = tmp_dir / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    path = tmp_dir / f"{case.replace(' ', '_')}.tflite"
    report = export(
        model, path, latency_runs=1, parity_images=8, labels=str(labels) if case != "float16" else None, **kwargs
    )
    return path, model, report


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mediapipe")


@pytest.mark.parametrize("case", ["float32", "float16", "int8", "int8 uint8-io", "converted lgc"])
def test_mediapipe_classifies_like_keras(case, export_dir):
    path, model, _ = exported(export_dir, case)
    images = generated_images(16)
    scores, names = mediapipe_scores(path, images)
    keras_top1 = model(images.astype(np.float32), training=False).numpy().argmax(-1)

    file_outputs = TFLitePredictor(str(path)).predict(images.astype(np.float32))
    # an int8 softmax outputs multiples of 1/256 (TFLite's fixed output scale), also behind a float output
    step = 1 / 256 if case.startswith("int8") else 0.0
    np.testing.assert_allclose(scores, file_outputs, atol=max(1e-6, step / 2))  # MediaPipe's preprocessing is ours
    assert np.abs(scores.sum(-1) - 1).max() <= max(1e-5, len(NAMES) * step / 2)
    assert names == ([f"class_{i}" for i in range(10)] if case == "float16" else NAMES)
    agreement = np.mean(scores.argmax(-1) == keras_top1)
    if case.startswith("int8"):
        assert agreement >= INT8_AGREEMENT
    else:
        assert agreement == 1.0


def test_mediapipe_refuses_int8_tensors_and_the_export_says_so(export_dir):
    path, _, report = exported(export_dir, "int8 int8-io")
    with pytest.raises(Exception, match="uint8/float32"):  # image_tensor_specs.cc: uint8 or float32 input only
        mediapipe_scores(path, generated_images(1))
    assert "--uint8-io" in report.metadata["MediaPipe"]
    assert "takes it" in exported(export_dir, "int8 uint8-io")[2].metadata["MediaPipe"]


def standard_metadata(path):
    """(ModelMetadataT, packed files) read with mediapipe's own generated schema classes."""
    data = path.read_bytes()
    buffer = litert.metadata_buffer(data, "TFLITE_METADATA")
    assert mp_schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)  # "M001"
    metadata = mp_schema.ModelMetadataT.InitFromObj(mp_schema.ModelMetadata.GetRootAs(buffer, 0))
    with zipfile.ZipFile(io.BytesIO(data)) as packed:
        files = {name: packed.read(name) for name in packed.namelist()}
    return metadata, files


@pytest.mark.parametrize(
    "case, mean, std, value_range",
    [("float32", 0.0, 1.0, [0.0, 255.0]), ("int8 uint8-io", 0.0, 1.0, [0.0, 255.0]),
     ("int8 int8-io", 128.0, 1.0, [-128.0, 127.0])],
)
def test_metadata_follows_the_schema(case, mean, std, value_range, export_dir):
    path, _, _ = exported(export_dir, case)
    metadata, files = standard_metadata(path)
    assert metadata.name == b"mobilenetv1" and metadata.minParserVersion == b"1.0.0" and metadata.version
    (subgraph,) = metadata.subgraphMetadata
    (image,), (scores,) = subgraph.inputTensorMetadata, subgraph.outputTensorMetadata
    assert image.content.contentPropertiesType == mp_schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == mp_schema.ColorSpaceType.RGB
    size = image.content.contentProperties.defaultSize
    assert (size.height, size.width) == (32, 32)
    (normalization,) = image.processUnits
    assert normalization.optionsType == mp_schema.ProcessUnitOptions.NormalizationOptions
    # the model normalizes inside: the tensor is the raw pixel, or its quantization (int8 = pixel - 128)
    assert list(normalization.options.mean) == [mean] and list(normalization.options.std) == [std]
    assert [image.stats.min[0], image.stats.max[0]] == value_range
    assert scores.name == b"probability" and list(scores.stats.min) == [0.0] and list(scores.stats.max) == [1.0]
    (labels,) = scores.associatedFiles
    assert labels.type == mp_schema.AssociatedFileType.TENSOR_AXIS_LABELS
    assert files[labels.name.decode()].decode().splitlines() == NAMES  # one line a class
