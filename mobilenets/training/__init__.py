"""Training with Keras `fit` under any tf.distribute strategy (see trainer.py).

    from hparams import get_preset, apply_overrides
    from mobilenets.training import train
    result = train(apply_overrides(get_preset("smoke"), ["run.run_dir=runs/smoke"]))

Modules: trainer (the run), objective (loss: cross-entropy, weight decay, group lasso),
optimization (optimizer, learning-rate schedule, weight decay), callbacks (condensation,
divergence guard, checkpoints, logs), ema (moving average of the weights), checkpointing (what
is saved), inputs (per-epoch seeded data), distribute (strategies), rundir (default run
directory, resume checks), lock (one process per run directory), settings
(preset + config file + overrides; no TensorFlow). Names below load lazily, so `settings`
imports without TensorFlow.
"""

import importlib

_EXPORTS = {
    "train": "trainer", "Trainer": "trainer", "TrainingResult": "trainer", "build_kwargs": "trainer",
    "condensation_steps": "trainer", "Classifier": "objective", "SparseCrossEntropy": "objective",
    "WarmupDecay": "optimization", "learning_rate_schedule": "optimization", "make_optimizer": "optimization",
    "resolve_config": "settings",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mobilenets.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mobilenets.training' has no attribute {name!r}")
