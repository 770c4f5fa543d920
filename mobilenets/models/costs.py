"""Parameter and multiply-add counting, as the papers count them.

Multiply-adds count convolutions and fully-connected layers (not BatchNorm,
activations or additions). Parameters are the trainable ones (BatchNorm
moving statistics excluded, unlike Keras' `count_params()`). A learned group
conv counts as it will be deployed after condensation: each output reads
in/C inputs.
"""

import dataclasses

import numpy as np
import tf_keras as keras

from mobilenets.models.layers import LearnedGroupConv, leaf_layers


@dataclasses.dataclass
class Cost:
    params: int = 0
    madds: int = 0


def _spatial_size(layer):
    shape = layer.compute_output_shape(layer._build_input_shape)
    return int(shape[1]) * int(shape[2])


def _leaf_cost(layer):
    """(params, multiply-adds) of one weight-holding leaf layer."""
    if isinstance(layer, LearnedGroupConv):
        connections = layer.in_channels * layer.filters // layer.condense_factor
        return connections, connections * _spatial_size(layer)
    params = int(sum(np.prod(w.shape) for w in layer.trainable_weights))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return params, int(np.prod(layer.depthwise_kernel.shape)) * _spatial_size(layer)
    if isinstance(layer, keras.layers.Conv2D):
        return params, int(np.prod(layer.kernel.shape)) * _spatial_size(layer)
    if isinstance(layer, keras.layers.Dense):
        return params, int(np.prod(layer.kernel.shape))
    return params, 0


def count(model):
    """Total `Cost` of a built model."""
    total = Cost()
    for layer in leaf_layers(model):
        params, madds = _leaf_cost(layer)
        total.params += params
        total.madds += madds
    return total
