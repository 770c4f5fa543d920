"""Exponential moving average (EMA) of a network's weights (regularization.ema_decay > 0).

The rule is tf.train.ExponentialMovingAverage's with num_updates = the optimizer's step count,
which TF Model Garden's MovingAverage optimizer calls `dynamic_decay` ("similar to
tf.train.ExponentialMovingAverage in TF 1.x"); the MobileNetV3 paper (Howard et al. 2019, sec. 6.1)
trains with an exponential moving average of decay 0.9998. After optimizer step n = 1, 2, ...:

    d_n = min(decay, (1 + n) / (10 + n))       (warmup; without it d_n = decay)
    average <- average - (1 - d_n) * (average - weight)

The average starts as a copy of the weights when the run starts (TF: "initialized with the same
initial values as the trained variables"), so with the warm-up
average_n = prod_k d_k * w_0 + sum_k (1 - d_k) prod_{j > k} d_j * w_k.

What is averaged: the trainable weights and the BatchNorm moving statistics (as timm's ModelEma and
Model Garden's EMA with trainable_weights_only=False do: BatchNorm statistics that belong to older
weights would mismatch the averaged kernels). What is copied: everything else, i.e. the LGC masks
and condensation stages: a mask is a 0/1 decision, not a weight, and the averaged kernels must be
masked exactly as the trained ones are (the converted model then equals the masked one).

The average lives in a second instance of the same architecture (`average`), so that a checkpoint
holds it as a complete model: the run's `checkpoints/ckpt-N` store it under `ema/average/` next to
the trained weights (`model/`, needed to resume), `best/` stores it as its `model/`, and
`mobilenets.runs.restore_model` loads it when present. Updates run as one tf.function between steps,
in cross-replica context (AverageWeights callback): a distributed weight is read as every replica
sees it (mirrored), a per-replica BatchNorm statistic as its mean over replicas.
"""

import tensorflow as tf
import tf_keras as keras

from mobilenets.models.layers import leaf_layers


def decay_at(step, decay, warmup=True):
    """d_n of the rule above after optimizer step `step` (n >= 1): a float of numbers, a tensor of tensors
    (the update's tf.function)."""
    if not warmup:
        return decay
    ramp = (1.0 + step) / (10.0 + step)
    return tf.minimum(decay, ramp) if tf.is_tensor(ramp) else min(decay, ramp)


def averaged_and_copied(network, average):
    """([(average variable, network variable)] averaged, [...] copied): trainable weights and
    BatchNorm moving statistics are averaged, other variables (LGC masks, stages) copied. Pairs
    are matched layer by layer, so freezing layers later (fine-tuning) does not reorder them."""
    ours, theirs = leaf_layers(average), leaf_layers(network)
    if [type(layer) for layer in ours] != [type(layer) for layer in theirs]:
        raise ValueError(f"the average of {network.name} must be a model of the same architecture")
    averaged, copied = [], []
    for mine, layer in zip(ours, theirs):
        if len(mine.weights) != len(layer.weights):
            raise ValueError(f"layer {layer.name} has {len(layer.weights)} weights, its average {len(mine.weights)}")
        statistics = {id(v) for v in (getattr(layer, "moving_mean", None), getattr(layer, "moving_variance", None))
                      if isinstance(layer, keras.layers.BatchNormalization)}
        trainable = {id(v) for v in layer.trainable_weights}
        for avg, var in zip(mine.weights, layer.weights):
            if tuple(avg.shape) != tuple(var.shape) or avg.dtype != var.dtype:
                raise ValueError(f"{var.name} {var.shape} does not match its average {avg.name} {avg.shape}")
            average_it = var.dtype.is_floating and (id(var) in trainable or id(var) in statistics)
            (averaged if average_it else copied).append((avg, var))
    return averaged, copied


class WeightAverage:
    """The EMA of `network`'s weights, held in `average` (a second, identically built model).

    decay: the EMA decay per optimizer step (regularization.ema_decay); warmup: TF's num_updates
    rule. `checkpointable` is what a run's checkpoint stores under 'ema'.
    """

    def __init__(self, network, average, decay, warmup=True):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1); got {decay}")
        self.network, self.average = network, average
        self.decay, self.warmup = float(decay), bool(warmup)
        self.averaged, self.copied = averaged_and_copied(network, average)
        self.checkpointable = tf.Module(name="ema")
        self.checkpointable.average = average
        self.reset()

    @tf.function(autograph=False)
    def _update(self, step):
        decay = decay_at(tf.cast(step, tf.float32), tf.constant(self.decay, tf.float32), self.warmup)
        rate = {}
        for avg, var in self.averaged:
            if avg.dtype not in rate:
                rate[avg.dtype] = tf.cast(1.0 - decay, avg.dtype)
            avg.assign_sub(rate[avg.dtype] * (avg - var))

    def update(self, step):
        """One EMA step after optimizer step `step` (a number or the optimizer's `iterations`)."""
        self._update(tf.convert_to_tensor(step, tf.int64))

    def reset(self):
        """The average := the network's current weights (the start of an average)."""
        for avg, var in self.averaged + self.copied:
            avg.assign(var)

    def sync(self):
        """Copies the non-averaged state (LGC masks, stages) into `average`: call before using it."""
        for avg, var in self.copied:
            avg.assign(var)

    def copy_to_network(self):
        """The network's averaged weights := the average (what a finished run hands back)."""
        for avg, var in self.averaged:
            var.assign(avg)

    def swap(self):
        """Exchanges the network's averaged weights with the average (twice restores both, exactly)."""
        self.sync()
        for avg, var in self.averaged:
            trained = tf.identity(var)
            var.assign(avg)
            avg.assign(trained)


class AverageWeights(keras.callbacks.Callback):
    """Updates `ema` after every training batch and validates with the averaged weights: swapped
    into the network when evaluation starts, swapped back when it ends (before the epoch-end
    callbacks that save checkpoints)."""

    def __init__(self, ema):
        super().__init__()
        self.ema, self.swapped = ema, False

    def on_train_batch_end(self, batch, logs=None):
        self.ema.update(self.model.optimizer.iterations)

    def on_test_begin(self, logs=None):
        if not self.swapped:
            self.ema.swap()
            self.swapped = True

    def on_test_end(self, logs=None):
        if self.swapped:
            self.ema.swap()
            self.swapped = False
