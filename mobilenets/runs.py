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
"""

import json
import os

import tensorflow as tf

from mobilenets.errors import CheckpointError, first_line
from mobilenets.io import write_json
from mobilenets.registry import build_model

MODEL_SPEC = "model.json"
CHECKPOINTS = {"last": "checkpoints", "best": "best"}


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


def load_run(run_dir, which="best", averaged=True):
    """Rebuilds the model of a run and restores its `which` checkpoint (falls back to 'last'); the
    averaged weights when the run kept an average and `averaged` (see restore_model)."""
    model = build_model(**load_model_spec(run_dir))
    path = latest_checkpoint(run_dir, which) or latest_checkpoint(run_dir, "last")
    if path is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet; train first or point at another run")
    return restore_model(model, path, averaged)
