"""BatchNorm moving statistics recomputed from images ("precise BN", Wu & Johnson 2021, Rethinking "Batch" in BatchNorm).

A moving average at momentum 0.99 forgets its start over a few hundred steps and lags behind
weights that change fast: after a short schedule (a folder of 320 photos gives 4 steps an epoch)
validation, export and predict would run on statistics that belong to no weights the run had, and
a model that trained well predicts one class. Precise BN replaces them with the average over
training batches of each BatchNorm's batch mean and variance under the current weights, as pycls
(`compute_precise_bn_stats`) and detectron2 (`PreciseBN`, `update_bn_stats`) do before each
evaluation. The trainer does it before every validation and every checkpoint (run.precise_bn_images).

A freshly initialized model's statistics (mean 0, variance 1) do not match its activations either;
benchmarks and tests of random models set them from one batch (`recompute_batch_norm_statistics`).
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from mobilenets.models.layers import leaf_layers


def batch_norm_layers(model):
    return [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batch_norm_statistics(model, images):
    """Sets every BatchNorm's moving mean and variance to those of `images` flowing through `model`; returns it."""
    BatchNormStatistics(model, traced=False).recompute([images])
    return model


class BatchNormStatistics:
    """Precise BN of one model: `recompute(batches)` sets the moving mean and variance of every
    trainable BatchNorm to the average over `batches` (images, or (images, labels) pairs) of its
    batch statistics, detectron2's update_bn_stats estimate. Each batch runs with momentum 0 (the
    moving statistics become that batch's) in a forward pass traced once (traced=False: eagerly);
    a BatchNorm in inference mode (a frozen layer) keeps its statistics.
    """

    def __init__(self, model, traced=True):
        self.model, self.layers = model, batch_norm_layers(model)
        self.forward = tf.function(self._statistics, reduce_retracing=True) if traced else self._statistics

    def _statistics(self, images):
        self.model(images, training=True)
        return [(layer.moving_mean.read_value(), layer.moving_variance.read_value()) for layer in self.layers]

    def recompute(self, batches):
        momenta = [layer.momentum for layer in self.layers]
        sums, count = None, 0
        try:
            for layer in self.layers:
                layer.momentum = 0.0  # read when the forward pass is traced (or run eagerly)
            for batch in batches:
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                values = [(m.numpy(), v.numpy()) for m, v in self.forward(tf.convert_to_tensor(images))]
                sums = values if sums is None else [(m + vm, v + vv) for (m, v), (vm, vv) in zip(sums, values)]
                count += 1
        finally:
            for layer, momentum in zip(self.layers, momenta):
                layer.momentum = momentum
        for layer, (mean, variance) in zip(self.layers, sums if count else ()):
            if not layer.trainable:  # inference mode: its statistics stay bit for bit
                continue
            layer.moving_mean.assign((mean / count).astype(np.float32))
            layer.moving_variance.assign((variance / count).astype(np.float32))


class PreciseBatchNorm(keras.callbacks.Callback):
    """Precise BN before each validation and before the epoch's checkpoints.

    batches(epoch): the training batches to average over (a pure function of the epoch, so a
    resumed run recomputes what an uninterrupted one does). Validation sees the weights it
    evaluates (the weight average when AverageWeights, placed before this callback, swapped it in);
    at the end of an epoch without validation the statistics of the weights a checkpoint will
    deploy (the average when `ema` is set) are recomputed. Place it before SaveCheckpoints.
    """

    def __init__(self, network, batches, ema=None):
        super().__init__()
        self.batches, self.ema = batches, ema
        self.network = BatchNormStatistics(network)
        self.average = BatchNormStatistics(ema.average) if ema else None
        self.fresh, self.epoch = False, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.fresh = False

    def on_test_begin(self, logs=None):
        self.network.recompute(self.batches(self.epoch))
        self.fresh = True

    def on_epoch_end(self, epoch, logs=None):
        if self.fresh or self.model.stop_training:
            return
        if self.ema:
            self.ema.sync()
        (self.average or self.network).recompute(self.batches(epoch))
        self.fresh = True
