"""Learned group convolution over a whole model (Huang et al. 2018, CondenseNet).

Group-lasso penalty, the condensation schedule and the condensation step. The
layer itself is `mobilenets.models.layers.LearnedGroupConv`.
"""

import tensorflow as tf

from mobilenets.models.layers import LearnedGroupConv, leaf_layers


def learned_group_convs(model):
    return [layer for layer in leaf_layers(model) if isinstance(layer, LearnedGroupConv)]


def group_lasso(model):
    """Sum of every learned group conv's group-lasso term (0 for other models)."""
    layers = learned_group_convs(model)
    return tf.add_n([layer.group_lasso() for layer in layers]) if layers else tf.constant(0.0)


def condense(model):
    """One condensation stage on every learned group conv; returns how many changed."""
    return sum(layer.condense_step() for layer in learned_group_convs(model))


def condensation_stages_done(model):
    layers = learned_group_convs(model)
    return min(int(layer.stage.numpy()) for layer in layers) if layers else 0


def sparsity(model):
    """Fraction of masked connections over all learned group convs."""
    layers = learned_group_convs(model)
    if not layers:
        return 0.0
    total = sum(layer.mask.shape.num_elements() for layer in layers)
    masked = sum(layer.sparsity() * layer.mask.shape.num_elements() for layer in layers)
    return masked / total


def condensenet_schedule(condense_factor, total_steps):
    """Steps at which to condense: training progress k / (2 (C - 1)), k = 1..C-1.

    The second half of training only optimizes the condensed connections.
    """
    stages = condense_factor - 1
    return [round(total_steps * k / (2 * stages)) for k in range(1, stages + 1)]
