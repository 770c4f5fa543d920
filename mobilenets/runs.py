"""The run directory: what a training run leaves, and how to get a model back.

    RUN_DIR/model.json         build_model keyword arguments (rebuilds the architecture)
    RUN_DIR/config.json        the resolved hyperparameters
    RUN_DIR/checkpoints/       tf.train.Checkpoint (model, optimizer, epoch; ema/average: the weight
                               average when regularization.ema_decay > 0): the last ones, for resume
    RUN_DIR/best/              tf.train.Checkpoint of the model with the best validation top-1 (the
                               weight average when the run has one: what was validated)
    RUN_DIR/logs/              TensorBoard; RUN_DIR/log.csv per-epoch metrics

Checkpoints are written by tf.train.CheckpointManager, which updates its index
file only after the data files are complete: a reader always finds the last
complete checkpoint. A model loaded from a run of averaged weights gets the averaged weights
(restore_model), so evaluation, export and conversion use them.

The data a run trained on, read back from its config.json (`run_data`), gives evaluation, export
calibration and prediction the same images the run saw, split the same way:

    data = run_data("runs/v2")                       # DataSettings: dataset, data_dir, options...
    make_dataset(**data.dataset_arguments(data.held_out()), batch_size=50, training=False)
"""

import dataclasses
import json
import os
from typing import Optional

import tensorflow as tf
import tf_keras as keras

from mobilenets.errors import CheckpointError, ConfigError, first_line
from mobilenets.io import write_json
from mobilenets.models.registry import build_model

# What a run directory holds (the module docstring says what each is):
MODEL_SPEC = "model.json"
CONFIG_FILE = "config.json"
CHECKPOINTS = {"last": "checkpoints", "best": "best"}  # checkpoint kind -> directory
TENSORBOARD_DIR = "logs"
LOG_FILE = "log.csv"  # commands/plot.py spells it too (without TensorFlow, which importing this module loads)


def save_model_spec(run_dir, **build_kwargs):
    """Records how to rebuild the model (`build_model(**build_kwargs)`)."""
    build_kwargs = dict(build_kwargs)
    if build_kwargs.get("input_shape") is not None:
        build_kwargs["input_shape"] = list(build_kwargs["input_shape"])
    write_json(os.path.join(run_dir, MODEL_SPEC), build_kwargs)


def load_model_spec(run_dir):
    path = os.path.join(run_dir, MODEL_SPEC)
    if not os.path.isdir(run_dir):
        raise CheckpointError(f"run directory {run_dir} does not exist; pass the --run-dir of a training run")
    try:
        with open(path) as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: {run_dir} is not a training run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt ({error}); restore it or retrain") from None
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError(f"{path} does not describe a model (no 'name'); restore it or retrain")
    return spec


def latest_checkpoint(run_dir, which="last"):
    """Path prefix of the newest complete checkpoint of kind `which` ('last' or 'best'), or None."""
    if which not in CHECKPOINTS:
        raise CheckpointError(f"unknown checkpoint kind {which!r}; choose 'last' or 'best'")
    return tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINTS[which]))


AVERAGE = "ema/average/"  # where a training checkpoint keeps the weight average (training/ema.py)


def restore_model(model, checkpoint_path, averaged=True):
    """Loads model weights (LGC masks included) from a tf.train.Checkpoint prefix: the exponential
    moving average of the weights when the checkpoint holds one and `averaged`, else the trained weights."""
    try:
        keys = [key for key, _ in tf.train.list_variables(checkpoint_path)]
        prefix = AVERAGE if averaged and any(key.startswith(AVERAGE) for key in keys) else "model/"
        stored = [key for key in keys
                  if key.startswith(prefix) and key.endswith("VARIABLE_VALUE") and "OPTIMIZER_SLOT" not in key]
        if len(stored) != len(model.variables):
            raise ValueError(f"it holds {len(stored)} model variables, the model has {len(model.variables)}")
        if prefix == AVERAGE:
            holder = tf.Module(name="ema")
            holder.average = model
            root = tf.train.Checkpoint(ema=holder)
        else:
            root = tf.train.Checkpoint(model=model)
        status = root.restore(checkpoint_path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:  # IndexError: a truncated file
        reason = first_line(error, 200)
        raise CheckpointError(
            f"checkpoint {checkpoint_path} does not fit model {model.name} ({reason}); "
            "it is truncated or from another architecture"
        ) from None
    return model


def run_checkpoint(run_dir, which="best"):
    """Prefix of the newest checkpoint of kind `which`; for 'best', the last checkpoint when the run
    kept no best one (a run without validation has none). CheckpointError when there is none at all."""
    path = latest_checkpoint(run_dir, which) or latest_checkpoint(run_dir, "last")
    if path is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet; train first or point at another run")
    return path


def checkpoint_epoch(path):
    """The epochs a run had done when it wrote checkpoint `path` (its 'epoch' variable), None when it holds none."""
    try:
        return int(tf.train.load_checkpoint(path).get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError, KeyError):
        return None


def is_best_checkpoint(path):
    """Whether checkpoint prefix `path` lies in a run's best/ folder."""
    return os.path.basename(os.path.dirname(os.fspath(path))) == CHECKPOINTS["best"]


def load_run(run_dir, which="best", averaged=True):
    """Rebuilds the model of a run and restores its `which` checkpoint (see run_checkpoint); the
    averaged weights when the run kept an average and `averaged` (see restore_model)."""
    model = build_model(**load_model_spec(run_dir))
    return restore_model(model, run_checkpoint(run_dir, which), averaged)


# ---------------------------------------------------------------- models to load: runs, checkpoints, saved files

KERAS_FILE_EXTENSIONS = (".keras", ".h5", ".hdf5")
SOURCES_HELP = "a run directory, a checkpoint prefix, a .keras/.h5 file, a SavedModel directory or a .tflite file"
def source_kind(path):
    """'run', 'checkpoint', 'keras' or 'tflite' for a path given to `evaluate_path`."""
    path = os.fspath(path)
    if path.endswith(".tflite") and os.path.isfile(path):
        return "tflite"
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, MODEL_SPEC)):
            return "run"
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "keras"
        raise CheckpointError(
            f"{path} is neither a run directory (no {MODEL_SPEC}) nor a SavedModel; pass {SOURCES_HELP}"
        )
    if os.path.exists(path + ".index"):
        return "checkpoint"
    if os.path.isfile(path) and path.endswith(KERAS_FILE_EXTENSIONS):
        return "keras"
    if not os.path.exists(path):
        raise CheckpointError(f"{path} does not exist; pass {SOURCES_HELP}")
    raise CheckpointError(f"{path} is not something to evaluate; pass {SOURCES_HELP}")


def run_dir_of_checkpoint(prefix):
    """The run directory holding checkpoint `prefix` (RUN/checkpoints/ckpt-N or RUN/best/ckpt-N)."""
    for directory in (os.path.dirname(prefix), os.path.dirname(os.path.dirname(prefix))):
        if os.path.exists(os.path.join(directory, MODEL_SPEC)):
            return directory
    raise CheckpointError(f"no {MODEL_SPEC} next to checkpoint {prefix}; pass the run directory instead")


def last_training_top1(run_dir):
    """The training top-1 of the last epoch in RUN_DIR/log.csv, None when the log or the column is missing."""
    import csv

    try:
        with open(os.path.join(run_dir, LOG_FILE), newline="") as f:
            rows = list(csv.DictReader(f))
        return float(rows[-1]["accuracy"]) if rows and rows[-1].get("accuracy") else None
    except (OSError, ValueError, csv.Error):
        return None


def run_dir_of(path, kind):
    """The run directory behind a 'run' or 'checkpoint' source, else None."""
    return path if kind == "run" else run_dir_of_checkpoint(path) if kind == "checkpoint" else None


def load_keras_model(path):
    """A saved Keras model (.keras, .h5 or SavedModel directory), for inference."""
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # any failure to read a user's file is reported the same way
        raise CheckpointError(
            f"{path} is not a loadable Keras model ({type(error).__name__}: {first_line(error, 200)}); save it again"
        ) from None
    if not isinstance(model, keras.Model):
        raise CheckpointError(
            f"{path} holds no Keras model (a tf.saved_model without Keras metadata?); save it with model.save"
        )
    return model


def load_keras_source(path, kind, which="best"):
    """The Keras model of a run ('best' or 'last' checkpoint), a checkpoint prefix or a saved model."""
    if kind == "run":
        return load_run(path, which)
    if kind == "checkpoint":
        model = build_model(**load_model_spec(run_dir_of_checkpoint(path)))
        return restore_model(model, path)
    return load_keras_model(path)


# ---------------------------------------------------------------- the run's data

FRACTION_SPLIT = ("validation", "val")  # the split names of the part held out by data.validation_fraction
SPLIT_SEED = 0  # which images folder and npz data hold out: the sources' default seed, which no setting changes


def load_run_config(run_dir):
    """The hparams.Config a run trained with (RUN_DIR/config.json); CheckpointError when it is missing or unreadable."""
    from hparams import Config

    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} is missing, so the run's data is unknown; name the data (--dataset, --data-dir)")
    try:
        return Config.load(path)
    except ConfigError as error:
        raise CheckpointError(f"{path} is unreadable ({error}); restore it, or name the data (--dataset, --data-dir)"
                              ) from None


def canonical_dataset(name):
    """The name make_dataset knows `name` by ('imagenet' -> 'imagenet2012')."""
    from mobilenets.data.pipeline import ALIASES

    return ALIASES.get(str(name).lower(), str(name).lower())


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which images, and how to read them: make_dataset's arguments for any split (`dataset_arguments`).

    from_run: the dataset a run trained on, read with the run's own options (`run_data`), so that
    its 'train' split is what the run trained on and `held_out()` what it validated on.
    """

    dataset: str
    data_dir: Optional[str] = None
    image_size: Optional[object] = None  # int or (height, width); None: the dataset's
    eval_crop_fraction: Optional[float] = None  # None: the dataset's
    options: dict = dataclasses.field(default_factory=dict)  # source options (training.inputs.source_options)
    from_run: bool = False

    def __post_init__(self):
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir))

    def dataset_arguments(self, split):
        """make_dataset keyword arguments for `split`, all but batch_size, training and seed."""
        return dict(name=self.dataset, split=split, data_dir=self.data_dir, image_size=self.image_size,
                    eval_crop_fraction=self.eval_crop_fraction, **self.options)

    def info(self):
        """The dataset's DatasetInfo, split sizes as these options split it."""
        from mobilenets.data import dataset_info

        return dataset_info(self.dataset, self.data_dir, **self.options)

    def held_out(self):
        """The split validated on and never trained on ('validation', CIFAR's 'test'); None when every image
        of the data is in 'train' (a class-folder tree or .npz file with validation_fraction=0)."""
        return validation_split(self.info().splits)

    def trained_on(self, split):
        """Whether the run trained on the images of `split` (only the run's own data has such a split)."""
        return self.from_run and str(split).lower() == "train"

    def is_fraction_split(self, split):
        """Whether `split` names the part data.validation_fraction holds out (an npz file's 'test' is it too)."""
        names = FRACTION_SPLIT + (("test",) if canonical_dataset(self.dataset) == "npz" else ())
        return str(split).lower() in names

    def describe(self, split, num_images=None):
        """'folder validation (held out: 0.25 of photos/, 9 images)' and the like."""
        fraction = self.options.get("validation_fraction") or 0
        where = self.data_dir
        if fraction and where:
            part = fraction if self.is_fraction_split(split) else 1 - fraction
            where = f"{part:g} of {where}"
        if self.trained_on(split):
            where = f"the run trained on these: {where or 'its training split'}"
        elif self.from_run and fraction and self.is_fraction_split(split):
            where = f"held out: {where}"
        notes = [note for note in (where, None if num_images is None else f"{num_images} images") if note]
        return f"{self.dataset} {split}" + (f" ({', '.join(notes)})" if notes else "")


def source_options(config):
    """make_dataset's source-specific options that the config sets."""
    data = config.data
    if data.dataset == "synthetic":
        return {"num_classes": config.num_classes or 10, "num_examples": data.synthetic_examples}
    if data.dataset in ("npz", "folder"):
        return {"validation_fraction": data.validation_fraction, "split_seed": SPLIT_SEED}
    if data.validation_fraction:
        raise ConfigError(f"data.validation_fraction holds out a split of 'npz' and 'folder' data only; {data.dataset!r} is "
                          f"validated on its official split: set data.validation_fraction=0")
    return {}


def validation_split(splits):
    """The split to validate on every epoch: 'validation', else 'test' (CIFAR has no other; the seeds
    and evaluate.py report it), else None."""
    return next((name for name in ("validation", "test") if name in splits and splits[name] != 0), None)


def data_of_config(config, dataset=None, data_dir=None, image_size=None):
    """DataSettings of a training config (see `run_data`)."""
    size = image_size or config.model.input_size
    if dataset is not None and canonical_dataset(dataset) != canonical_dataset(config.data.dataset):
        return DataSettings(dataset, data_dir, size)
    return DataSettings(config.data.dataset, data_dir or config.data.data_dir, size, config.data.eval_crop_fraction,
                        source_options(config), from_run=True)


def run_data(run_dir, dataset=None, data_dir=None, image_size=None):
    """DataSettings of the data a run trained on, from RUN_DIR/config.json: its dataset and data_dir,
    the source options training used (validation_fraction, split seed...: training.inputs.source_options),
    the model's input size and the evaluation crop. The one place evaluation, export calibration and
    prediction learn a run's data from.

    dataset / data_dir / image_size override the run's: another copy of the same dataset keeps the
    run's options (the same split); another dataset is read with its own defaults.
    """
    return data_of_config(load_run_config(run_dir), dataset, data_dir, image_size)
