"""The config of a training command: a preset, a config file and overrides, in that order.

    resolve_config(model="mobilenetv2_lgc")                       # the model's default preset
    resolve_config(preset="smoke", overrides=["model.name=igcv3"])
    resolve_config(config_file="my.yaml", overrides=["optimizer.lr=0.05"])

A config file holds only what it changes; the rest comes from --preset, else from the default
preset of --model or of the file's own model.name, else from the Config defaults. Pure Python
(no TensorFlow), so a wrong flag fails in a fraction of a second.

A flat folder of photos (data.dataset=folder, ROOT/<class>/*.jpg, no train/validation folders)
holds out HELD_OUT_BY_DEFAULT['folder'] of each class for validation, an npz file
HELD_OUT_BY_DEFAULT['npz'] of its examples, unless the command (a --set or the config file) sets
data.validation_fraction: users expect a validation figure, and the resolved config.json records
the split so that evaluation and export find it. A folder with one class, or a class too small to
be split, is refused here, before any work.

Small data (a folder or an npz file): when the preset's batch would give fewer than
MIN_STEPS_PER_EPOCH steps an epoch, and the command sets no batch size, the batch is halved until
it gives them (not below MIN_BATCH_SIZE) and the learning rate scaled with it (linear scaling,
Goyal et al. 2017) unless the command sets it: 320 photos at the presets' batch 64 give 4 steps an
epoch, too few for a short schedule to learn anything. Data smaller than one batch gets the largest batch
it fills.

timm's weights (model.weights a .safetensors file or hub id, mobilenets.models.timm_weights) set how the
model is built, as the checkpoint was trained: its normalization, bn_epsilon 1e-5, symmetric padding,
and its input size unless the command (a --set or the config file) sets model.input_size. A hub id is
downloaded here (or found in the cache), so that offline fails at once, before TensorFlow loads. A run that
resumes takes these from its own config.json when the file is gone (moved, or the hub out of reach): its
checkpoint holds the weights.
"""

import glob
import os

import numpy as np

from hparams import Config, apply_overrides, default_preset_for_model, get_preset
from hparams.config import read_config_file
from mobilenets.data.layout import class_image_counts, is_flat
from mobilenets.errors import CheckpointError, ConfigError

HELD_OUT_BY_DEFAULT = {"folder": 0.2, "npz": 0.15}  # the finetune preset's; the npz source's
MIN_STEPS_PER_EPOCH, MIN_BATCH_SIZE = 16, 16
RUNS_ROOT, RUN_CONFIG = "runs", "config.json"  # training.rundir.DEFAULT_ROOT, runs.CONFIG_FILE (both load TensorFlow)


def _base(model, preset, file_data):
    if preset:
        return get_preset(preset)
    file_model = file_data.get("model") if isinstance(file_data, dict) else None
    name = model or (file_model.get("name") if isinstance(file_model, dict) else None)
    return default_preset_for_model(name) if name else Config()


def resolve_config(model=None, preset=None, config_file=None, overrides=(), log=None):
    """The resolved hparams.Config; ConfigError (one line) on any mistake. log(line) hears what was
    fitted to the data (the batch of a small dataset)."""
    if not (model or preset or config_file):
        raise ConfigError("say what to train: --model NAME (its default preset), --preset NAME or --config FILE")
    file_data = read_config_file(config_file) if config_file else {}
    config = _base(model, preset, file_data)
    if config_file:
        try:
            config = Config.from_dict(file_data, base=config)
        except ConfigError as error:
            raise ConfigError(f"{config_file}: {error}") from None
    if model:
        config = apply_overrides(config, [f"model.name={model}"])
    config = apply_overrides(config, _head_epochs_scaled(config, file_data, list(overrides)))
    if _holds_out_by_default(config, file_data, overrides):
        config = apply_overrides(config, [f"data.validation_fraction={HELD_OUT_BY_DEFAULT[config.data.dataset]}"])
    examples = _training_examples(config)
    config = _batch_fitted_to_data(config, examples, file_data, overrides, log)
    return _built_for_timm_weights(config, file_data, overrides)


def _head_epochs_scaled(config, file_data, overrides):
    """`overrides`, plus finetune.head_epochs scaled with a schedule.epochs they set (and a head phase they
    leave alone): `--preset finetune --epochs 2` trains the head 1 epoch of 2, as the preset's 10 of 20."""
    head, epochs = config.finetune.head_epochs, config.schedule.epochs
    if not head or _set_by_command("finetune", "head_epochs", file_data, overrides):
        return overrides
    wanted = [o.split("=", 1)[1] for o in map(str, overrides) if o.split("=", 1)[0].strip() == "schedule.epochs"]
    try:
        new = int(wanted[-1]) if wanted else None
    except ValueError:
        return overrides  # hparams says what is wrong with it
    if new is None or new < 1 or new == epochs:
        return overrides
    return [f"finetune.head_epochs={min(new - 1, max(1, round(head * new / epochs)) if new > 1 else 0)}", *overrides]


def _set_by_command(section, key, file_data, overrides):
    file_data = file_data.get(section) if isinstance(file_data, dict) else None
    set_by_file = isinstance(file_data, dict) and key in file_data
    return set_by_file or any(str(o).split("=", 1)[0].strip() == f"{section}.{key}" for o in overrides)


def _built_for_timm_weights(config, file_data, overrides):
    """`config` with the model built as timm's checkpoint in model.weights was trained (module docstring)."""
    from mobilenets.models import timm_weights  # no TensorFlow

    weights = config.model.weights
    if not weights or not timm_weights.is_timm_source(weights):
        return config
    try:
        _, settings = timm_weights.prepare(weights, config.model.name)
    except CheckpointError:
        resumed = _built_as_the_run_it_resumes(config, file_data, overrides)
        if resumed is None:
            raise
        return resumed
    if not isinstance(settings.normalization, str):
        raise ConfigError(f"{weights} normalizes with mean/std {settings.normalization} (0..255), which no "
                          f"model.normalization choice matches; build it with build_model(weights=...) instead")
    changes = {f"model.{key}": value for key, value in settings.build_kwargs().items()}
    if not _set_by_command("model", "input_size", file_data, overrides):
        changes["model.input_size"] = settings.input_size
    return apply_overrides(config, changes)


def _built_as_the_run_it_resumes(config, file_data, overrides):
    """`config` with the model settings timm's weights gave the run it resumes (that run's config.json), when the
    run started from the same model.weights and holds a checkpoint; else None."""
    keys = ["normalization", "bn_epsilon", "padding"]
    if not _set_by_command("model", "input_size", file_data, overrides):
        keys.append("input_size")
    default = os.path.join(RUNS_ROOT, glob.escape(f"{config.model.name}-{config.data.dataset}-") + "*")
    run_dirs = glob.escape(config.run.run_dir) if config.run.run_dir else default
    for path in sorted(glob.glob(os.path.join(run_dirs, RUN_CONFIG))):
        try:
            earlier = Config.load(path)
        except ConfigError:
            continue
        if (earlier.model.name, earlier.model.weights) != (config.model.name, config.model.weights):
            continue
        resumed = apply_overrides(config, {f"model.{key}": getattr(earlier.model, key) for key in keys})
        from mobilenets.training.rundir import has_checkpoint, resolve_run_dir  # TensorFlow: the training follows

        run_dir = os.path.abspath(os.path.dirname(path))
        if has_checkpoint(run_dir) and os.path.abspath(resolve_run_dir(resumed).run.run_dir) == run_dir:
            return resumed
    return None


def _holds_out_by_default(config, file_data, overrides):
    """True for a flat folder of photos or an npz file whose validation fraction is 0 and not set by the command."""
    data = config.data
    if data.dataset not in HELD_OUT_BY_DEFAULT or data.validation_fraction or not data.data_dir:
        return False
    if _set_by_command("data", "validation_fraction", file_data, overrides):
        return False
    path = os.path.expanduser(data.data_dir)
    return os.path.isfile(path) if data.dataset == "npz" else os.path.isdir(path) and is_flat(path)


def _held_out(count, fraction):
    """Examples of a class of `count` held out for validation (mobilenets.data.folder.held_out's rounding)."""
    return int(round(count * fraction))


def _training_examples(config):
    """Training examples of a folder or npz dataset, counted from file names or the labels alone (None
    for other datasets or data that cannot be read: its loader says why later). Refuses, in one line,
    data with one class and flat-folder classes too small to split."""
    data = config.data
    if data.dataset not in HELD_OUT_BY_DEFAULT or not data.data_dir:
        return None
    path = os.path.expanduser(data.data_dir)
    if data.dataset == "npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                labels = np.asarray(archive["y"])
        except Exception:  # noqa: BLE001 (mobilenets.data.npz names what is wrong with it)
            return None
        counts = {str(label): int(n) for label, n in zip(*np.unique(labels, return_counts=True))}
        what = f"{path} holds one class (label {next(iter(counts), 'none')})"
        _require_classes(counts, what, "save images of at least two classes in y")
        return len(labels) - _held_out(len(labels), data.validation_fraction)
    if not os.path.isdir(path):
        return None
    counts = {name: n for name, n in class_image_counts(path).items() if n}
    if not counts:
        return None
    what = f"{path} holds one class folder of images ({next(iter(counts))})"
    _require_classes(counts, what, "add a folder of images for each other class: ROOT/<class_name>/*.jpg")
    fraction = data.validation_fraction if is_flat(path) else 0.0
    for name, count in counts.items():
        held = _held_out(count, fraction)
        if fraction and (held == 0 or held == count):
            need = next(n for n in range(2, 1000) if 0 < _held_out(n, fraction) < n)
            raise ConfigError(f"class {name!r} of {path} has {count} image{'' if count == 1 else 's'}, too few to "
                              f"hold out data.validation_fraction={fraction:g} of them and train on the rest: add "
                              f"images (at least {need}) or make ROOT/train/ and ROOT/val/ folders yourself")
    return sum(count - _held_out(count, fraction) for count in counts.values())


def _require_classes(counts, what, how):
    if len(counts) < 2:
        raise ConfigError(f"{what}: a classifier needs at least two classes; {how}")


def _batch_fitted_to_data(config, examples, file_data, overrides, log):
    """`config` with the batch (and, unless the command sets it, the learning rate) of a small dataset (module
    docstring); below MIN_BATCH_SIZE only as far as one batch of the data needs."""
    batch = config.schedule.batch_size
    if not examples or _set_by_command("schedule", "batch_size", file_data, overrides):
        return config
    wanted = 1 if config.run.steps_per_epoch else MIN_STEPS_PER_EPOCH
    fitted = batch
    while fitted > 1 and (examples // fitted < 1 or (examples // fitted < wanted and fitted // 2 >= MIN_BATCH_SIZE)):
        fitted //= 2
    if fitted == batch:
        return config
    changes = {"schedule.batch_size": fitted}
    lr = config.optimizer.lr
    if not _set_by_command("optimizer", "lr", file_data, overrides):
        changes["optimizer.lr"] = lr = lr * fitted / batch
    if log:
        steps = examples // fitted
        log(f"{examples} training images: batch {fitted} instead of {batch} ({steps} step{'s' * (steps != 1)} an "
            f"epoch instead of {examples // batch}), learning rate {lr:g}; --batch-size and --lr set them")
    return apply_overrides(config, changes)
