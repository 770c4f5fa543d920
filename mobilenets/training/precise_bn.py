"""BatchNorm moving statistics recomputed from images ("precise BN", Wu & Johnson 2021, Rethinking BatchNorm).

A freshly initialized model's statistics (mean 0, variance 1) do not match its
activations, which then grow through the depth; benchmarks and tests of random
models set them from a batch first, so that logits and int8 ranges look like a
trained model's.
"""

import tensorflow as tf
import tf_keras as keras

from mobilenets.models.layers import leaf_layers


def recompute_batch_norm_statistics(model, images):
    """Sets every BatchNorm's moving mean and variance to those of `images` flowing through `model`; returns it."""
    layers = [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        model(tf.convert_to_tensor(images), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return model
