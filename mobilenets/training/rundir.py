"""Where a run lives, and whether starting it again resumes it.

The default run directory is runs/<model>-<dataset>-<hash of the config>: running the same
command again finds the same directory and continues from its last checkpoint, while a
different config gets a directory of its own. Settings that do not change the result
(RESUMABLE_CHANGES) may differ on resume; changing any other needs run.resume=true (--resume).
"""

import hashlib
import json
import os
import shutil

from hparams import Config, apply_overrides
from mobilenets.errors import ConfigError
from mobilenets.runs import CHECKPOINTS, CONFIG_FILE, MODEL_SPEC

DEFAULT_ROOT = "runs"
# run.* keys that may change between an interrupted run and its continuation.
RESUMABLE_CHANGES = ("run.run_dir", "run.resume", "run.strategy", "run.log_every", "run.eval_every",
                     "run.checkpoint_every", "run.nan_policy", "run.nan_lr_factor", "run.nan_restarts")


def _flat(config):
    return {f"{section}.{key}": value for section, values in config.to_dict().items() for key, value in values.items()}


# Settings added after runs existed, with their defaults: left out of the hash while at the default,
# so that the same command still finds a run started before they existed.
ADDED_LATER = {"model.weights": None, "finetune.head_epochs": 0, "finetune.unfreeze_from": None,
               "finetune.lr_factor": 0.1}
ADDED_LATER.update({"regularization.ema_decay": 0.0, "regularization.ema_warmup": True})  # weight EMA (issue 15)
ADDED_LATER.update({  # extra augmentations (issue 15), all off at their defaults
    "data.auto_augment": "none", "data.randaugment_layers": 2, "data.randaugment_magnitude": 9.0,
    "data.randaugment_magnitude_std": 0.0, "data.random_erasing": 0.0, "data.random_erasing_min_area": 0.02,
    "data.random_erasing_max_area": 0.33, "data.mixup_alpha": 0.0, "data.cutmix_alpha": 0.0,
    "data.mix_probability": 1.0, "data.mix_switch_probability": 0.5})
ADDED_LATER.update({"model.drop_path_rate": 0.0})  # stochastic depth (issue 15)
ADDED_LATER.update({"model.bn_epsilon": 1e-3, "model.padding": "same"})  # timm's weights (issue 23)
ADDED_LATER.update({"run.precise_bn_images": 1024, "finetune.batch_norm": "train"})  # issue 30


def config_hash(config):
    """8 hex digits identifying the settings that change what a run computes."""
    settings = {k: v for k, v in _flat(config).items()
                if k not in RESUMABLE_CHANGES and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def resolve_run_dir(config):
    """`config` with run.run_dir set (the default when it is None)."""
    if config.run.run_dir is not None:
        return config
    name = f"{config.model.name}-{config.data.dataset}-{config_hash(config)}"
    return apply_overrides(config, {"run.run_dir": os.path.join(DEFAULT_ROOT, name)})


def has_checkpoint(run_dir, which="last"):
    return os.path.exists(os.path.join(run_dir, CHECKPOINTS[which], "checkpoint"))


def remove_unused(run_dir, created):
    """After a run failed: removes `run_dir` and its parents up to `created` (the outermost directory
    the run created, None when RUN_DIR existed before) unless it holds a checkpoint."""
    directory, created = os.path.abspath(run_dir), created and os.path.abspath(created)
    if created is None or os.path.commonpath([directory, created]) != created:
        return
    if any(has_checkpoint(run_dir, which) for which in CHECKPOINTS):
        return
    shutil.rmtree(directory, ignore_errors=True)
    while directory != created:
        directory = os.path.dirname(directory)
        if not os.path.isdir(directory) or os.listdir(directory):
            break
        os.rmdir(directory)


def config_changes(old, new):
    """['section.key: old -> new', ...] of the settings that change the result."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES]


def check_resumable(config):
    """Returns True when config.run.run_dir holds a checkpoint to continue from.

    Raises ConfigError when that run was started with other settings and run.resume is off.
    """
    run_dir = config.run.run_dir
    if not has_checkpoint(run_dir):
        return False
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{run_dir} has checkpoints but no {CONFIG_FILE}; choose another --run-dir")
    old = Config.load(path)
    check_same_architecture(run_dir, old, config)
    changes = config_changes(old, config)
    if changes and not config.run.resume:
        shown = "; ".join(changes[:3]) + ("; ..." if len(changes) > 3 else "")
        raise ConfigError(f"{run_dir} holds a run with other settings ({shown}): pass --resume to continue it with "
                          f"the new ones, or choose another --run-dir")
    return True


def check_same_architecture(run_dir, old, new):
    """ConfigError when `new` builds another model than the run in `run_dir` (its model.json, else its
    config `old`): that run's checkpoints cannot be restored into it, --resume or not."""
    spec = {"name": old.model.name, "width_multiplier": old.model.width_multiplier}
    try:
        with open(os.path.join(run_dir, MODEL_SPEC)) as f:
            spec.update({k: v for k, v in json.load(f).items() if k in spec})
    except (OSError, ValueError):
        pass  # no readable model.json: the config says
    if (spec["name"], float(spec["width_multiplier"])) == (new.model.name, float(new.model.width_multiplier)):
        return
    width = float(spec["width_multiplier"])
    flags = " ".join(([f"--model {spec['name']}"] if spec["name"] != new.model.name else [])
                     + ([f"--width {width:g}"] if width != float(new.model.width_multiplier) else []))
    raise ConfigError(f"{run_dir} holds a {spec['name']} run of width {width:g} (its {MODEL_SPEC}), not "
                      f"{new.model.name} of width {float(new.model.width_multiplier):g}; pick another --run-dir, "
                      f"or pass {flags} to continue it")
