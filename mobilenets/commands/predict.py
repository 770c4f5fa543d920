"""Top-k classes of image files, from a training run, a saved Keras model or a .tflite file.

    mobilenets-predict runs/flowers photo.jpg more/*.png
    mobilenets-predict flowers.tflite photo.jpg --top-k 3 --json predictions.json
    mobilenets-predict runs/flowers photos/                  # every image in a directory and below it

Prints one line per image, best class first:

    photo.jpg: rose 0.912, tulip 0.071, daisy 0.017

Each image (JPEG, PNG, or any other format tf.io.decode_image reads) is read and center-cropped
to the model's input size exactly as evaluation reads a folder dataset (mobilenets.data:
read_image, then center_crop). The crop fraction is, for a run (or a saved model inside one,
RUN_DIR/converted.keras), its config.json data.eval_crop_fraction (`mobilenets.runs.run_data`);
for a .tflite, what its export description (embedded, else the <file>.json sidecar) records;
otherwise the default for the input size: 1.0 up to 32x32 (CIFAR's), 0.875 above (ImageNet's). Labels: a run's dataset's class names (a
folder run's class folders, CIFAR-10's names), a .tflite's packed labels, else class_N.
--top-k above the number of classes lists every class. A Keras model's logits go through a
softmax; a .tflite that ends in a softmax (the default export) gives its probabilities as they are.

An image that cannot be read is one `error: IMAGE: cannot decode ...` line on stderr and the
others are still scored; the exit code is then 1. A bad model or option: one line, exit 2.
"""

import os
import re
import sys

import numpy as np

from mobilenets.commands import cli
from mobilenets.errors import CheckpointError, ConfigError, DataError, MobilenetsError, first_line
from mobilenets.labels import class_names, dataset_labels
from mobilenets.quiet import held_stderr

BATCH_SIZE = 32  # images per model call
DECIMALS = 3  # probabilities as printed


def parse_args(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("model", help="run directory, checkpoint prefix, .keras/.h5 file, SavedModel directory "
                                      "or .tflite file")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="JPEG or PNG files (or GIF, BMP...), or directories: every image in them, sorted")
    parser.add_argument("--top-k", default="5", help="classes per image (default 5; at most the number of classes)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the predictions as JSON")
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="best", help="which checkpoint of a run (default: best)"
    )
    parser.add_argument("--num-threads", default=None, help=".tflite interpreter threads (default: the runtime's)")
    return parser.parse_args(argv)


def positive_int(value, flag):
    """`value` (a command-line string or an int) as a positive int; ConfigError otherwise."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(number) != str(value).strip():
        raise ConfigError(f"{flag} must be a positive integer, got {value!r}")
    return number


# ---------------------------------------------------------------- the model


class Classifier:
    """A predictor (`mobilenets.evaluation`), its labels and how images are cropped for it."""

    def __init__(self, predictor, labels, crop_fraction, labels_note=None):
        self.predictor, self.labels, self.crop_fraction = predictor, labels, crop_fraction
        self.labels_note = labels_note  # why the labels are class_N although the run names a dataset
        height, width = predictor.input_shape[:2]
        self.size = (height, width)

    def probabilities(self, images):
        """(N, classes) float64 probabilities of float32 raw-pixel images."""
        outputs = self.predictor.predict(images).astype(np.float64)
        if getattr(self.predictor, "probabilities", False):
            return outputs
        shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def load_classifier(path, which="best", num_threads=None):
    """The `Classifier` of a run, checkpoint prefix, saved Keras model or .tflite file."""
    from mobilenets.deploy.runtime import TFLitePredictor
    from mobilenets.evaluation import KerasPredictor
    from mobilenets.runs import load_keras_source, source_kind

    path = os.fspath(path)
    kind = source_kind(path)
    if kind == "tflite":
        predictor = TFLitePredictor(path, num_threads)
        _check_image_input(path, predictor.input_shape)
        packed = (predictor.metadata or {}).get("labels")
        names = packed if packed and len(packed) == predictor.num_classes else None
        return Classifier(predictor, class_names(names, predictor.num_classes),
                          tflite_crop_fraction(path, predictor.input_shape))
    predictor = KerasPredictor(load_keras_source(path, kind, which))
    _check_image_input(path, predictor.input_shape)
    run_dir = source_run_dir(path, kind)
    data = _run_data_or_none(run_dir) if run_dir else None
    names, note = run_labels(data, predictor.num_classes) if data else (None, None)
    crop_fraction = (data and data.eval_crop_fraction) or default_crop_fraction(predictor.input_shape)
    return Classifier(predictor, class_names(names, predictor.num_classes), crop_fraction, note)


def source_run_dir(path, kind):
    """The run directory of a run or checkpoint prefix, or holding a saved model (RUN_DIR/converted.keras)."""
    from mobilenets.runs import MODEL_SPEC, run_dir_of

    if kind in ("run", "checkpoint"):
        return run_dir_of(path, kind)
    parent = os.path.dirname(os.path.abspath(path))
    return parent if kind == "keras" and os.path.isfile(os.path.join(parent, MODEL_SPEC)) else None


def _run_data_or_none(run_dir):
    """The run's `runs.DataSettings`, or None when its config.json is missing or unreadable."""
    from mobilenets import runs

    try:
        return runs.run_data(run_dir)
    except CheckpointError:
        return None


def run_labels(data, num_classes):
    """(class names of the run's dataset or None, why they could not be read or None): the training
    data may have moved since; predictions do not need it."""
    try:
        return dataset_labels(None, data.dataset, data.data_dir, num_classes), None
    except (MobilenetsError, OSError) as error:
        return None, f"cannot name the classes from {data.data_dir} ({first_line(error, 200)}): class_N"


def _check_image_input(path, shape):
    if len(shape) != 3 or shape[-1] != 3 or None in shape:
        raise CheckpointError(
            f"{path} takes {shape} inputs, not fixed-size RGB images (height, width, 3); "
            "save or export it with input_shape=(H, W, 3)"
        )


def default_crop_fraction(input_shape):
    """The evaluation crop of the datasets at this input size: CIFAR's up to 32x32, else ImageNet's."""
    from mobilenets.data import cifar, imagenet

    small = max(input_shape[:2]) <= max(cifar.IMAGE_SIZE)
    return cifar.EVAL_CROP_FRACTION if small else imagenet.EVAL_CROP_FRACTION


def tflite_crop_fraction(path, input_shape):
    """The crop its export description records (a run's export does), else the size's default."""
    from mobilenets.deploy.export import export_description

    recorded = ((export_description(path) or {}).get("input") or {}).get("eval_crop_fraction")
    return float(recorded) if recorded else default_crop_fraction(input_shape)


# ---------------------------------------------------------------- images


def image_cropper(size, crop_fraction):
    """uint8 (H, W, 3) image -> float32 (height, width, 3) raw pixels: the evaluation center_crop, traced
    as the evaluation pipeline traces it (image size unknown until decoded)."""
    import tensorflow as tf

    from mobilenets.data.augment import center_crop

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def crop(image):
        return center_crop(image, size, crop_fraction)

    return crop


def read_images(paths, crop, report_error):
    """[(path, cropped image)] of the images that decode (`read_image`); `report_error(path, reason)`
    for the others."""
    from mobilenets.data.common import read_image

    loaded = []
    for path in paths:
        if not os.path.isfile(path):
            report_error(path, "no such file" if not os.path.exists(path) else "not a file")
            continue
        try:
            with held_stderr():  # the decoders' own lines ("Premature end of JPEG data"): reported as one line
                image = _decoded(path, read_image)
        except DataError as error:
            report_error(path, str(error))
            continue
        loaded.append((path, crop(image).numpy()))
    return loaded


def _decoded(path, read_image):
    """read_image(path); DataError with the decoder's reason when it fails."""
    import tensorflow as tf

    try:
        return read_image(path)
    except tf.errors.OpError as error:
        raise DataError(re.sub(r"\s*\[Op:\w+\].*$", "", first_line(error, 200))) from None


# ---------------------------------------------------------------- predictions


def top_k(probabilities, labels, k):
    """[{'label', 'index', 'probability'}] of the k most probable classes, best first (ties: lower index)."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [{"label": labels[i], "index": int(i), "probability": float(probabilities[i])} for i in order]


def predict(classifier, paths, k, report_error):
    """Yields {'image', 'top_k'} for each image of `paths` that decodes, in order, reading BATCH_SIZE
    images at a time; `report_error(path, reason)` for the others."""
    crop = image_cropper(classifier.size, classifier.crop_fraction)
    for start in range(0, len(paths), BATCH_SIZE):
        loaded = read_images(paths[start : start + BATCH_SIZE], crop, report_error)
        if not loaded:
            continue
        scores = classifier.probabilities(np.stack([image for _, image in loaded]))
        for (path, _), row in zip(loaded, scores):
            yield {"image": path, "top_k": top_k(row, classifier.labels, k)}


def format_prediction(result):
    """'photo.jpg: rose 0.912, tulip 0.071, daisy 0.017'"""
    classes = ", ".join(f"{entry['label']} {entry['probability']:.{DECIMALS}f}" for entry in result["top_k"])
    return f"{result['image']}: {classes}"


def image_paths(arguments):
    """The files of `arguments`, each directory replaced by the image files in it and below it, sorted
    (hidden folders left out); ConfigError for a directory without images."""
    from mobilenets.data.layout import is_image

    paths = []
    for argument in arguments:
        if not os.path.isdir(argument):
            paths.append(argument)
            continue
        found = []
        for where, below, files in os.walk(argument):
            below[:] = sorted(d for d in below if not d.startswith("."))
            found += [os.path.join(where, f) for f in sorted(files) if is_image(f)]
        if not found:
            raise ConfigError(f"{argument} holds no image files (.jpg, .png, .bmp, .gif, .webp); pass images or "
                              f"a folder of them")
        paths += found
    return paths


def predict_and_print(args):
    """The command: prints each image's top-k, writes --json; 1 when an image failed, else 0."""
    from mobilenets.io import reporting_write_errors, write_json

    k = positive_int(args.top_k, "--top-k")
    threads = None if args.num_threads is None else positive_int(args.num_threads, "--num-threads")
    paths = image_paths(args.images)
    cli.import_quietly("mobilenets.evaluation")
    classifier = load_classifier(args.model, args.checkpoint, threads)
    if classifier.labels_note:
        print(f"warning: {classifier.labels_note}", file=sys.stderr)
    failed = []

    def report_error(path, reason):
        failed.append(path)
        print(f"error: {path}: cannot decode ({reason}); pass a JPEG or PNG image", file=sys.stderr)

    results = []
    for result in predict(classifier, paths, min(k, len(classifier.labels)), report_error):
        print(format_prediction(result), flush=True)
        results.append(result)
    if args.json:
        with reporting_write_errors(args.json):
            write_json(args.json, results)
    return 1 if failed else 0


def main(argv=None):
    args = parse_args(argv)
    return cli.run(lambda: predict_and_print(args))


if __name__ == "__main__":
    sys.exit(main())
