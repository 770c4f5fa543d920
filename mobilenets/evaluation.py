"""Evaluation of a training run, a saved Keras model or a `.tflite` file.

    report = evaluate_path("runs/v2_lgc", convert=True)      # the run's own data, the split it held out
    report = evaluate_path("model.tflite", "cifar100", data_dir="~/data/cifar-100", plot_path="classes.png")
    print(format_report(report))

Reports top-1, top-5, mean cross-entropy, the number of images, per-class top-1 and
the confusion matrix (also drawn as a PNG: `plot_path`), parameters and
multiply-adds (`mobilenets.models.costs.count`; for a `.tflite`, read off its conv
and fully-connected ops) and, for a `.tflite`, the mean interpreter latency per
image. A run (or a checkpoint of one) is evaluated on the data it trained on, read
as it was (`mobilenets.runs.run_data`: dataset, data_dir, image size, split), on
the split it held out; which checkpoint was restored is reported.
`convert=True` evaluates a learned-group-conv checkpoint after its
conversion to standard group convs (`mobilenets.deploy.convert`, CondenseNet's
test-time form, Huang et al. 2018) and saves the converted model. Every
failure a user can cause raises a one-line `MobilenetsError`; nothing is
written unless the evaluation succeeds.
"""

import contextlib
import dataclasses
import os
import signal
import threading
from typing import List, Optional

import numpy as np
import tensorflow as tf

from mobilenets import learning, runs
from mobilenets.runs import KERAS_FILE_EXTENSIONS, load_keras_source, run_dir_of, run_dir_of_checkpoint, source_kind
# mobilenets.deploy.convert also registers DeployedInvertedResidual, which loading a converted model needs.
from mobilenets.deploy.convert import convert_learned_group_model, not_convertible
from mobilenets.deploy.export import export_description
from mobilenets.deploy.runtime import TFLitePredictor
from mobilenets.deploy.tuning import lgc_costs
from mobilenets.models.condensation import learned_group_convs
from mobilenets.data import make_dataset
from mobilenets.errors import ConfigError, DataError
from mobilenets.models.costs import count
from mobilenets.io import atomic_path, reporting_write_errors, write_json
from mobilenets.labels import class_names, dataset_labels
from mobilenets.models.registry import is_learned_group_model

CONVERTED_NAME = "converted.keras"


class KerasPredictor:
    """Logits of a Keras model in inference mode (BatchNorm moving statistics)."""

    def __init__(self, model):
        self.model = model
        self.input_shape = tuple(model.input_shape[1:])
        self.num_classes = int(model.output_shape[-1])
        self.cost = count(model)
        self.cost_note = None
        self._logits = tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((None, *self.input_shape), tf.float32)],
        )

    def predict(self, images):
        return self._logits(tf.convert_to_tensor(images, tf.float32)).numpy()


# Probabilities are clipped to [EPSILON, 1] before the log, as Keras' cross-entropy on probabilities does.
EPSILON = 1e-7


@dataclasses.dataclass
class Metrics:
    num_images: int
    top1: float
    top5: float
    loss: float  # mean softmax cross-entropy
    # confusion[true class, top-1 prediction] = number of images
    confusion: Optional[np.ndarray] = dataclasses.field(default=None, compare=False)


def _dims(shape):
    return "x".join("?" if side is None else str(side) for side in shape)


def _check_input_shape(predictor, shape):
    expected = predictor.input_shape
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        raise DataError(
            f"the model takes {_dims(expected)} images but the data is {_dims(shape)}; "
            f"evaluate at the model's size (--image-size / image_size={expected[0]}) or pick the matching model"
        )


def evaluate(predictor, batches, max_images=None):
    """`Metrics` of `predictor` over (images, labels) batches (a tf.data.Dataset or any iterable)."""
    top1 = top5 = 0
    loss_sum = 0.0
    seen = 0
    confusion = np.zeros((predictor.num_classes, predictor.num_classes), np.int64)
    for images, labels in batches:
        images, labels = np.asarray(images, np.float32), np.asarray(labels).astype(np.int64)
        if max_images is not None:
            images, labels = images[: max_images - seen], labels[: max_images - seen]
        if seen == 0:
            _check_input_shape(predictor, images.shape[1:])
        outside = labels[(labels < 0) | (labels >= predictor.num_classes)]
        if outside.size:
            raise DataError(
                f"label {int(outside[0])} is outside the model's {predictor.num_classes} classes; "
                "evaluate on the dataset the model was trained for"
            )
        logits = predictor.predict(images).astype(np.float64)
        if getattr(predictor, "probabilities", False):  # log p: logits whose softmax is p
            logits = np.log(np.clip(logits, EPSILON, 1.0))
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss_sum -= log_probs[np.arange(len(labels)), labels].sum()
        ranking = np.argsort(-logits, axis=1, kind="stable")
        top1 += int((ranking[:, 0] == labels).sum())
        np.add.at(confusion, (labels, ranking[:, 0]), 1)
        top5 += int((ranking[:, :5] == labels[:, None]).any(axis=1).sum())
        seen += len(labels)
        if max_images is not None and seen >= max_images:
            break
    if seen == 0:
        raise DataError("the data has no images; check the dataset, split and data_dir")
    return Metrics(seen, top1 / seen, top5 / seen, loss_sum / seen, confusion)


def per_class(confusion, names):
    """[{'label', 'count', 'top1'}] of a confusion matrix (rows: true class): each class's name, number of
    images and top-1; top1 None for a class without images."""
    results = []
    for index, name in enumerate(names):
        count = int(confusion[index].sum())
        top1 = float(confusion[index, index] / count) if count else None
        results.append({"label": name, "count": count, "top1": top1})
    return results


@dataclasses.dataclass
class Report:
    """What `evaluate_path` measured, as printed and as written by --json."""

    model: str
    source: str  # 'run', 'checkpoint', 'keras' or 'tflite'
    dataset: str
    split: str
    data: str  # what was evaluated: 'folder validation (held out: 0.25 of photos/, 9 images)'
    trained_on: bool  # the run trained on these images (asked for with split='train')
    num_images: int
    top1: float
    top5: float
    loss: float
    params: Optional[int]
    madds: Optional[int]
    cost_note: Optional[str] = None
    converted: bool = False
    converted_to: Optional[str] = None
    latency_ms: Optional[float] = None
    num_threads: Optional[int] = None
    tflite_metadata: Optional[dict] = None  # a .tflite's standard metadata: {'input': '32x32 RGB...', ...}
    lgc_madds: Optional[dict] = None  # a condensed LGC model: {'condensed': ..., 'deployed': ...} multiply-adds
    checkpoint: Optional[str] = None  # the checkpoint restored, and why when it is not the one asked for
    class_names: List[str] = dataclasses.field(default_factory=list)
    per_class: List[dict] = dataclasses.field(default_factory=list)  # see `per_class`
    confusion_matrix: List[List[int]] = dataclasses.field(default_factory=list)  # [true class][predicted class]
    plot: Optional[str] = None  # the PNG of the confusion matrix and per-class top-1
    json: Optional[str] = None  # where the report was written as JSON
    warnings: List[str] = dataclasses.field(default_factory=list)  # it learned nothing, one class, overfitting

    def as_dict(self):
        return dataclasses.asdict(self)


def condensed_and_deployed_madds(model):
    """{'condensed', 'deployed'} multiply-adds of a fully condensed LGC model (`deploy.tuning.lgc_costs`), else None."""
    layers = learned_group_convs(model)
    if not layers or any(int(layer.stage.numpy()) < layer.condense_factor - 1 for layer in layers):
        return None
    return {form: cost.madds for form, cost in lgc_costs(model).items()}


def check_convertible(path, kind):
    """Fails fast, before anything is built, when `path` cannot hold a learned-group-conv model."""
    if kind == "tflite":
        raise ConfigError(f"--convert needs a learned-group-conv checkpoint or Keras model, not the .tflite {path}")
    if kind in ("run", "checkpoint"):
        name = runs.load_model_spec(path if kind == "run" else run_dir_of_checkpoint(path))["name"]
        if not is_learned_group_model(name):
            raise not_convertible(name)


def default_converted_path(path, kind):
    if kind == "run":
        return os.path.join(path, CONVERTED_NAME)
    if kind == "checkpoint":
        return os.path.join(run_dir_of_checkpoint(path), CONVERTED_NAME)
    return os.path.splitext(os.path.normpath(path))[0] + "_" + CONVERTED_NAME


def save_keras_model(model, path):
    """Saves atomically: `.keras` or `.h5` by extension, otherwise a SavedModel directory."""
    path = os.fspath(path)
    extension = os.path.splitext(path)[1] if path.endswith(KERAS_FILE_EXTENSIONS) else ""
    with reporting_write_errors(path), atomic_path(path, suffix=extension) as tmp:
        model.save(tmp, save_format=None if extension else "tf")


def data_to_evaluate(path, kind, dataset=None, data_dir=None, image_size=None):
    """`runs.DataSettings` to evaluate `path` on: a run's own data (runs.run_data; the arguments override),
    a .tflite's (`data_of_file`), else the dataset named (also for a run that kept no config.json)."""
    if kind == "tflite":
        return data_of_file(path, dataset, data_dir, image_size)
    run_dir = run_dir_of(path, kind)
    if run_dir is not None and (dataset is None or os.path.exists(os.path.join(run_dir, runs.CONFIG_FILE))):
        return runs.run_data(run_dir, dataset, data_dir, image_size)
    if dataset is None:
        raise ConfigError(f"{path} is a {kind} model, which does not record its data; name the dataset to "
                          "evaluate it on (--dataset, --data-dir)")
    return runs.DataSettings(dataset, data_dir, image_size)


def data_of_file(path, dataset=None, data_dir=None, image_size=None):
    """`runs.DataSettings` to evaluate a .tflite on, at its input size: the data of the run it was exported from,
    as its description records it (dataset, held-out split, evaluation crop) and in `data_dir`, unless another
    dataset is named."""
    described = export_description(path) or {}
    image, run = described.get("input") or {}, described.get("data") or {}
    size = image_size or (tuple(image["shape"][1:3]) if image.get("shape") else None)
    if run and (dataset is None or runs.canonical_dataset(dataset) == runs.canonical_dataset(run["dataset"])):
        options = {key: value for key, value in run.items() if key != "dataset"}
        if data_dir is None and "validation_fraction" in options:  # folder and npz data: where is it?
            raise ConfigError(f"{path} was exported from a run on {run['dataset']} data; pass --data-dir, the "
                              "data it trained on, to score the images it held out")
        return runs.DataSettings(run["dataset"], data_dir, size, image.get("eval_crop_fraction"), options,
                                 from_run=True)
    if dataset is None:
        raise ConfigError(f"{path} is a tflite model, which does not record its data; name the dataset to evaluate "
                          "it on (--dataset, --data-dir)")
    return runs.DataSettings(dataset, data_dir, size)


def split_to_evaluate(data, split=None):
    """`split`, else the split a run held out ('validation' for other data); one-line DataError for a run
    that held out nothing."""
    if split is not None and (data.trained_on(split) or not data.from_run):
        return split
    held_out = data.held_out() if data.from_run else None
    if data.from_run and held_out is None:
        fraction = data.options.get("validation_fraction")
        setting = "" if fraction is None else f" (data.validation_fraction={fraction:g})"
        raise DataError(f"the run trained on every image of {data.data_dir or data.dataset}{setting} and held out "
                        "none to evaluate; name other data (--dataset, --data-dir) or pass --split train to score "
                        "the images it trained on")
    return split or held_out or "validation"


def checkpoint_description(checkpoint, which, data):
    """The checkpoint restored, and why it is the last one when the best was asked for."""
    if which != "best" or runs.is_best_checkpoint(checkpoint):
        return checkpoint
    reason = ("it had no validation split to pick one" if data.from_run and data.held_out() is None
              else "none was saved yet")
    return f"{checkpoint} (the last: the run kept no best checkpoint, {reason})"


def dataset_class_names(predictor, data):
    """Class names from a .tflite's metadata labels, else the dataset's (folder names, CIFAR-10's), else class_N."""
    count = predictor.num_classes
    labels = (getattr(predictor, "metadata", None) or {}).get("labels")
    if labels and len(labels) == count:
        return list(labels)
    try:
        return class_names(dataset_labels(None, data.dataset, data.data_dir, count), count)
    except ConfigError:  # names that do not fit the model's classes: numbered classes instead
        return class_names(None, count)


@contextlib.contextmanager
def _uninterrupted():
    """Ctrl-C is ignored while the outputs are written: either all of them are, or (interrupted before) none."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def evaluate_path(
    path,
    dataset=None,
    data_dir=None,
    split=None,
    batch_size=50,
    image_size=None,
    which="best",
    convert=False,
    output=None,
    condense_remaining=False,
    num_threads=None,
    max_images=None,
    json_path=None,
    plot_path=None,
    progress=None,
):
    """Evaluates `path` (see `source_kind`) and returns a `Report`.

    A run or a checkpoint of one is evaluated on its own data as it trained on it (`runs.run_data`:
    dataset, data_dir, model input size, evaluation crop, validation_fraction and split seed) and on
    the split it held out; a run that held out nothing is refused unless split='train' (reported as
    trained on). dataset / data_dir / image_size override the run's (required for a saved model or a
    .tflite). which: the run's 'best' checkpoint, or its 'last' (also when it kept no best one: the
    report says so).
    convert: convert an LGC model to standard group convs first (see
        `mobilenets.deploy.convert.convert_learned_group_model`; condense_remaining as
        there) and save it to `output` (default RUN_DIR/converted.keras; a
        `.keras` / `.h5` file or a SavedModel directory).
    num_threads: interpreter threads for a `.tflite` (default: the runtime's).
    max_images: stop after this many images. json_path: also write the report there. plot_path: draw
    the confusion matrix and per-class top-1 into this PNG.
    Files are written only after the evaluation succeeded, atomically. progress(line): hears each stage.
    """
    progress = progress or (lambda line: None)
    path = os.fspath(path)
    kind = source_kind(path)
    if convert:
        check_convertible(path, kind)
    if max_images is not None and max_images < 1:
        raise ConfigError(f"max_images must be a positive integer, got {max_images}")
    data = data_to_evaluate(path, kind, dataset, data_dir, image_size)
    split = split_to_evaluate(data, split)
    classes = data.info().num_classes
    batches = make_dataset(**data.dataset_arguments(split), batch_size=batch_size, training=False)
    progress(f"loading {path}" + (" and converting its learned group convs" if convert else ""))
    loaded = load_predictor(path, kind, which, convert, condense_remaining, num_threads)
    check_class_count(loaded.predictor, data.dataset, classes)
    progress(f"scoring {data.describe(split)}")
    metrics = evaluate(loaded.predictor, batches, max_images)
    if loaded.converted is not None:
        output = os.fspath(output or default_converted_path(path, kind))
    report = make_report(path, kind, loaded, data, split, metrics, which, num_threads, output, json_path, plot_path)
    write_outputs(report, loaded.converted)
    return report


def write_outputs(report, converted=None):
    """Writes what the report names: the `converted` model (to report.converted_to), the plot, the JSON;
    all of them, or (Ctrl-C before) none."""
    with _uninterrupted():
        if converted is not None:
            save_keras_model(converted, report.converted_to)
        if report.plot:
            plot_per_class(report, report.plot)
        if report.json:
            with reporting_write_errors(report.json):
                write_json(report.json, report.as_dict())


@dataclasses.dataclass
class Loaded:
    """What `load_predictor` loaded: the predictor to evaluate, the converted Keras model (convert=True),
    a condensed LGC model's multiply-adds (`condensed_and_deployed_madds`), the checkpoint restored."""

    predictor: object
    converted: Optional[object] = None
    lgc_madds: Optional[dict] = None
    checkpoint: Optional[str] = None


def load_predictor(path, kind, which="best", convert=False, condense_remaining=False, num_threads=None):
    """`Loaded` of `path` (see `evaluate_path` for the arguments): a .tflite's interpreter, else the Keras
    model of a run's `which` checkpoint, a checkpoint or a saved file (its converted form with convert=True)."""
    if kind == "tflite":
        return Loaded(TFLitePredictor(path, num_threads))
    checkpoint = runs.run_checkpoint(path, which) if kind == "run" else path if kind == "checkpoint" else None
    model = load_keras_source(checkpoint, "checkpoint") if checkpoint else load_keras_source(path, kind)
    converted = convert_learned_group_model(model, condense_remaining=condense_remaining) if convert else None
    return Loaded(KerasPredictor(converted or model), converted, condensed_and_deployed_madds(model), checkpoint)


def check_class_count(predictor, dataset, classes):
    """DataError when `dataset` has another number of `classes` (None: unknown) than the model has outputs."""
    if classes and classes != predictor.num_classes:
        raise DataError(
            f"the model has {predictor.num_classes} outputs but {dataset} has {classes} classes; "
            "evaluate on the dataset the model was trained for"
        )


def learning_warnings(metrics, names, trained_on, run_dir):
    """The lines that say the model learned nothing, answers one class, or overfits (mobilenets.learning)."""
    lines = [learning.dominant_class_warning(metrics.confusion.sum(axis=0).tolist(), names)]
    if not trained_on:
        lines.append(learning.chance_warning(metrics.top1, len(metrics.confusion), metrics.num_images, "top-1"))
        if run_dir:
            lines.append(learning.overfitting_warning(runs.last_training_top1(run_dir), metrics.top1))
    return [line for line in lines if line]


def make_report(path, kind, loaded, data, split, metrics, which, num_threads, output, json_path, plot_path):
    """The `Report` of `evaluate_path`'s measurement."""
    predictor, converted, cost = loaded.predictor, loaded.converted is not None, loaded.predictor.cost
    names = dataset_class_names(predictor, data)
    trained_on = data.trained_on(split)
    checkpoint = loaded.checkpoint
    return Report(
        model=path,
        source=kind,
        dataset=data.dataset,
        split=split,
        data=data.describe(split, metrics.num_images),
        trained_on=trained_on,
        num_images=metrics.num_images,
        top1=metrics.top1,
        top5=metrics.top5,
        loss=metrics.loss,
        params=cost.params if cost else None,
        madds=cost.madds if cost else None,
        cost_note=predictor.cost_note,
        converted=converted,
        converted_to=output if converted else None,
        latency_ms=getattr(predictor, "latency_ms", None),
        num_threads=num_threads if kind == "tflite" else None,
        lgc_madds=loaded.lgc_madds,
        tflite_metadata=_metadata_summary(predictor) if kind == "tflite" else None,
        checkpoint=checkpoint and (checkpoint_description(checkpoint, which, data) if kind == "run" else checkpoint),
        class_names=names,
        per_class=per_class(metrics.confusion, names),
        confusion_matrix=metrics.confusion.tolist(),
        plot=os.fspath(plot_path) if plot_path else None,
        json=os.fspath(json_path) if json_path else None,
        warnings=learning_warnings(metrics, names, trained_on, data.from_run and run_dir_of(path, kind)),
    )


def _metadata_summary(predictor):
    """{name: text} of a .tflite's standard metadata (what `format_report` prints)."""
    from mobilenets.deploy import metadata

    described = predictor.metadata
    if described is None or "error" in described:
        return {"metadata": metadata.format_description(None) if described is None else described["error"]}
    return dict(metadata.summary_lines(described))


def plot_per_class(report, path):
    """Draws the report's confusion matrix (each true class's share predicted as each class) and per-class
    top-1 into the PNG `path`, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(report.confusion_matrix, np.float64)
    count = len(confusion)
    shares = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    side = min(4.5 + 0.3 * count, 16.0)
    figure, (matrix, bars) = plt.subplots(1, 2, figsize=(side * 1.6, side), gridspec_kw={"width_ratios": [2, 1]})
    figure.suptitle(f"{os.path.basename(os.path.normpath(report.model))}: {report.data}", fontsize=9)
    shown = matrix.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(shown, ax=matrix, fraction=0.046, label="share of the true class")
    matrix.set(title="confusion matrix", xlabel="predicted", ylabel="true")
    if count <= MAX_LISTED_CLASSES:
        for (row, column), number in np.ndenumerate(confusion.astype(np.int64)):
            matrix.text(column, row, str(number), ha="center", va="center", fontsize=8,
                        color="white" if shares[row, column] > 0.5 else "black")
    top1 = [np.nan if entry["top1"] is None else entry["top1"] for entry in report.per_class]
    bars.barh(np.arange(count), top1, color="tab:blue")
    bars.set(xlim=(0, 1), ylim=(count - 0.5, -0.5), title=f"top-1 per class (all: {100 * report.top1:.1f}%)")
    if count <= 60:
        for axis in (matrix, bars):
            axis.set_yticks(np.arange(count), report.class_names, fontsize=7)
        matrix.set_xticks(np.arange(count), report.class_names, rotation=90, fontsize=7)
    figure.tight_layout()
    try:
        with reporting_write_errors(path), atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(figure)


def _millions(value):
    return "n/a" if value is None else f"{value / 1e6:.3f}M ({value:,})"


MAX_LISTED_CLASSES = 20  # more classes: only the worst are printed
WORST_SHOWN = 5
MAX_CONFUSION_COLUMNS = 10  # up to this many classes, each printed class shows its row of the confusion matrix
NAME_WIDTH = 24


def _per_class_lines(report):
    """('  class', 'top-1 of images; ...') lines: every class up to MAX_LISTED_CLASSES, else the worst few."""
    entries = list(enumerate(report.per_class))
    if not entries:
        return []
    if len(entries) <= MAX_CONFUSION_COLUMNS:
        title = "per class", "top-1 of its images; predicted as " + " / ".join(report.class_names)
    elif len(entries) <= MAX_LISTED_CLASSES:
        title = "per class", "top-1 of its images; most often mistaken for"
    else:
        entries = sorted((entry for entry in entries if entry[1]["count"]), key=lambda entry: entry[1]["top1"])
        entries = entries[:WORST_SHOWN]
        title = (f"worst {len(entries)} classes",
                 f"of {len(report.per_class)}; top-1 of its images; most often mistaken for")
    lines = [title]
    for index, entry in entries:
        name = "  " + entry["label"][:NAME_WIDTH]
        if not entry["count"]:
            lines.append((name, "no images"))
            continue
        row = report.confusion_matrix[index]
        value = f"{100 * entry['top1']:6.2f}% of {entry['count']}; "
        if len(report.per_class) <= MAX_CONFUSION_COLUMNS:
            value += " / ".join(str(number) for number in row)
        else:
            wrong = max((number, other) for other, number in enumerate(row) if other != index)
            value += f"{report.class_names[wrong[1]]} ({wrong[0]})" if wrong[0] else "nothing else"
        lines.append((name, value))
    if len(report.per_class) > MAX_LISTED_CLASSES:
        where = " and ".join(filter(None, (report.plot, report.json)))
        lines.append(("  ...", f"every class: {where}" if where else "every class: pass --json PATH or --plot PATH"))
    return lines


def format_report(report):
    """The report as aligned 'name  value' lines."""
    model = f"{report.model} ({report.source})"
    if report.converted:
        model += f", converted to group convs, saved to {report.converted_to}"
    params = _millions(report.params) + (f", {report.cost_note}" if report.cost_note else "")
    lines = [
        ("model", model),
        *([("checkpoint", report.checkpoint)] if report.checkpoint else []),
        ("data", report.data),
        ("top-1", f"{100 * report.top1:.2f}%"),
        ("top-5", f"{100 * report.top5:.2f}%"),
        ("loss", f"{report.loss:.4f}"),
        ("parameters", params),
        ("multiply-adds", _millions(report.madds)),
    ]
    if report.lgc_madds:
        lines.append(("LGC forms", f"{_millions(report.lgc_madds['condensed'])} multiply-adds condensed (CondenseNet's "
                                   f"count), {_millions(report.lgc_madds['deployed'])} as export_tflite.py deploys it "
                                   "with every projection grouped"))
    if report.latency_ms is not None:
        threads = "default" if report.num_threads is None else report.num_threads
        lines.append(("latency", f"{report.latency_ms:.3f} ms/image (threads: {threads})"))
    for name, value in (report.tflite_metadata or {}).items():
        lines.append((name if name == "metadata" else f"metadata: {name}", value))
    lines += _per_class_lines(report)
    width = max(len(name) for name, _ in lines)
    return "\n".join([f"{name.ljust(width)}  {value}" for name, value in lines] + report.warnings)
