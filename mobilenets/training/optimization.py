"""Optimizer, learning-rate schedule and weight decay of a training config.

The schedule is a function of the optimizer's step counter, so it is checkpointed with the
optimizer and resumes exactly: a linear warm-up from 0 (always per batch, Goyal et al. 2017,
"Accurate, Large Minibatch SGD"), then cosine decay (Loshchilov & Hutter 2017, SGDR), the
exponential staircase of the TF-slim / torchvision ImageNet recipes, or a constant rate.

Weight decay is coupled, as PyTorch's SGD `weight_decay` and the papers' recipes: the loss gains
weight_decay / 2 * sum(w ** 2), so the gradient gains weight_decay * w. With
`weight_decay_skip_bn_and_bias`, 1-D variables (biases, BatchNorm scales and offsets) are not
decayed, as in d-li14's MobileNetV2 recipe ("no bias decay", He et al. 2019, "Bag of Tricks").
With optimizer.name='adamw' the decay is decoupled instead (Loshchilov & Hutter 2019): AdamW
shrinks each decayed weight by lr * weight_decay * w per step, and the loss gains no L2 term
(`coupled_weight_decay` is then 0); the same 1-D variables are skipped.
"""

import math

import tensorflow as tf
import tf_keras as keras

from mobilenets.errors import ConfigError


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step): linear warm-up to `peak` over `warmup_epochs`, then `decay` until `epochs`.

    decay: 'cosine' (to min_lr), 'step' (peak * decay_rate ** floor(epochs after warm-up / decay_epochs))
    or 'constant'. per_batch=False moves the decay once per epoch (the warm-up stays per batch).
    """

    def __init__(self, peak, steps_per_epoch, epochs, warmup_epochs=0.0, decay="cosine", per_batch=True,
                 min_lr=0.0, decay_rate=0.1, decay_epochs=30.0):
        super().__init__()
        if decay not in ("cosine", "step", "constant"):
            raise ConfigError(f"unknown learning-rate decay {decay!r}; choose cosine, step or constant")
        self.peak, self.steps_per_epoch, self.epochs = float(peak), int(steps_per_epoch), float(epochs)
        self.warmup_epochs, self.decay, self.per_batch = float(warmup_epochs), decay, bool(per_batch)
        self.min_lr, self.decay_rate, self.decay_epochs = float(min_lr), float(decay_rate), float(decay_epochs)

    def __call__(self, step):
        epoch = tf.cast(step, tf.float32) / self.steps_per_epoch  # fractional epochs done
        decay_epoch = epoch if self.per_batch else tf.floor(epoch)
        after_warmup = tf.maximum(decay_epoch - self.warmup_epochs, 0.0)
        if self.decay == "cosine":
            progress = tf.minimum(after_warmup / max(self.epochs - self.warmup_epochs, 1e-8), 1.0)
            rate = self.min_lr + 0.5 * (self.peak - self.min_lr) * (1.0 + tf.cos(math.pi * progress))
        elif self.decay == "step":
            rate = self.peak * tf.pow(self.decay_rate, tf.floor(after_warmup / self.decay_epochs))
        else:
            rate = tf.constant(self.peak)
        if self.warmup_epochs > 0:
            rate = tf.where(epoch < self.warmup_epochs, self.peak * epoch / self.warmup_epochs, rate)
        return rate

    def get_config(self):
        return {
            "peak": self.peak, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs, "decay": self.decay, "per_batch": self.per_batch,
            "min_lr": self.min_lr, "decay_rate": self.decay_rate, "decay_epochs": self.decay_epochs,
        }


class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """schedule(step) * scale, where `scale` is a variable: lowered when a run restarts after its
    loss diverged (run.nan_policy=restart) and checkpointed, so a resumed run keeps it."""

    def __init__(self, schedule, scale):
        super().__init__()
        self.schedule, self.scale = schedule, scale

    def __call__(self, step):
        return self.schedule(step) * tf.cast(self.scale, tf.float32)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "scale": float(self.scale.numpy())}


class TwoPhases(keras.optimizers.schedules.LearningRateSchedule):
    """`first(step)` for the first `boundary` steps, then `second(step - boundary)`: fine-tuning's
    head-only phase and its unfrozen phase, each with a schedule of its own (config.finetune)."""

    def __init__(self, first, second, boundary):
        super().__init__()
        self.first, self.second, self.boundary = first, second, int(boundary)

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        return tf.where(step < self.boundary, self.first(step), self.second(tf.maximum(step - self.boundary, 0)))

    def get_config(self):
        serialize = keras.optimizers.schedules.serialize
        return {"first": serialize(self.first), "second": serialize(self.second), "boundary": self.boundary}


def learning_rate_schedule(config, steps_per_epoch, scale=None):
    """The WarmupDecay of `config.optimizer.lr` and `config.schedule`, times the variable `scale` if given.

    With finetune.head_epochs, the head-only phase runs the schedule over its epochs at
    optimizer.lr, the unfrozen phase over the rest at optimizer.lr * finetune.lr_factor.
    """
    s, head = config.schedule, config.finetune.head_epochs

    def warmup_decay(peak, epochs):
        return WarmupDecay(peak, steps_per_epoch, epochs, s.warmup_epochs, s.decay, s.per_batch, min(s.min_lr, peak),
                           s.decay_rate, s.decay_epochs)

    schedule = warmup_decay(config.optimizer.lr, s.epochs)
    if head:
        schedule = TwoPhases(warmup_decay(config.optimizer.lr, head),
                             warmup_decay(config.optimizer.lr * config.finetune.lr_factor, s.epochs - head),
                             head * steps_per_epoch)
    return schedule if scale is None else ScaledSchedule(schedule, scale)


class AdamW(keras.optimizers.AdamW):
    """tf_keras AdamW that, with skip_bn_and_bias, does not decay 1-D variables (biases, BatchNorm
    scales and offsets, layer scales): `exclude_from_weight_decay` by shape, decided per variable
    when the update runs, so it needs no model at construction."""

    def __init__(self, *args, skip_bn_and_bias=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip_bn_and_bias = bool(skip_bn_and_bias)

    def _use_weight_decay(self, variable):
        if self.skip_bn_and_bias and variable.shape.rank is not None and variable.shape.rank <= 1:
            return False
        return super()._use_weight_decay(variable)

    def get_config(self):
        return {**super().get_config(), "skip_bn_and_bias": self.skip_bn_and_bias}


def coupled_weight_decay(config):
    """The weight decay the loss carries as an L2 penalty: regularization.weight_decay, or 0 with
    'adamw', whose decay is decoupled and applied by the optimizer (make_optimizer)."""
    return 0.0 if config.optimizer.name == "adamw" else config.regularization.weight_decay


def make_optimizer(config, lr):
    """SGD (optionally Nesterov), RMSProp, Adam or AdamW of `config.optimizer`; `lr`: a rate or a
    schedule. AdamW decays by regularization.weight_decay (decoupled, lr-scaled), skipping 1-D
    variables with regularization.weight_decay_skip_bn_and_bias."""
    o = config.optimizer
    if o.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=o.momentum, nesterov=o.nesterov, clipnorm=o.clipnorm)
    if o.name == "rmsprop":
        return keras.optimizers.RMSprop(lr, rho=o.rho, momentum=o.momentum, epsilon=o.epsilon, clipnorm=o.clipnorm)
    if o.name == "adam":
        return keras.optimizers.Adam(lr, beta_1=o.momentum, epsilon=o.epsilon, clipnorm=o.clipnorm)
    if o.name == "adamw":
        reg = config.regularization
        return AdamW(lr, weight_decay=reg.weight_decay, beta_1=o.momentum, epsilon=o.epsilon, clipnorm=o.clipnorm,
                     skip_bn_and_bias=reg.weight_decay_skip_bn_and_bias)
    raise ConfigError(f"unknown optimizer.name {o.name!r}; choose sgd, rmsprop, adam or adamw")


def decayed_variables(model, skip_bn_and_bias):
    """The trainable variables that weight decay applies to (not the 1-D ones when skipping)."""
    return [v for v in model.trainable_variables if not (skip_bn_and_bias and v.shape.rank <= 1)]


def weight_decay_penalty(variables, weight_decay):
    """weight_decay / 2 * sum of squares: its gradient is weight_decay * w (PyTorch's coupled decay)."""
    if not weight_decay or not variables:
        return tf.constant(0.0)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in variables])
