"""tf.distribute strategies by name, and which worker writes the run directory.

    default       one device (tf.distribute's default strategy)
    mirrored      synchronous data parallelism over the local GPUs (or logical devices)
    multi_worker  synchronous data parallelism over the workers of TF_CONFIG
                  (MultiWorkerMirroredStrategy; start the same command on every worker)
    tpu           TPUStrategy on the TPU named by TPU_NAME ('' = the local one)

Keras `fit` runs the train step on every replica and all-reduces the gradients, so the
global batch (`schedule.batch_size`) is split evenly over `num_replicas_in_sync` replicas.
"""

import json
import os
import tempfile

import tensorflow as tf
import tf_keras as keras

from mobilenets.errors import ConfigError
from mobilenets.models.layers import leaf_layers

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name):
    """The tf.distribute strategy called `name`. Create it before any other TensorFlow work."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        return _tpu_strategy()
    raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _check_tf_config():
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError("run.strategy=multi_worker needs TF_CONFIG (cluster and task of this worker) in the "
                          "environment, e.g. {\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                          "\"task\": {\"type\": \"worker\", \"index\": 0}}")
    try:
        spec = json.loads(text)
        spec["cluster"], spec["task"]["type"], spec["task"]["index"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError("TF_CONFIG is not valid: it must be JSON with 'cluster' and 'task': "
                          "{\"type\": ..., \"index\": ...}") from None


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        reason = " ".join(str(error).split())[:150]
        raise ConfigError(f"run.strategy=tpu but no TPU could be reached ({reason}); set TPU_NAME or choose "
                          f"another run.strategy") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """True for the one worker that writes logs, configs and the real checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def writable_dir(path, strategy):
    """`path` on the chief; a private temporary directory on other workers.

    Every worker of MultiWorkerMirroredStrategy must take part in saving a checkpoint; only the
    chief's copy is kept (the TensorFlow multi-worker guide's pattern).
    """
    if is_chief(strategy):
        return path
    return tempfile.mkdtemp(prefix=f"worker{strategy.cluster_resolver.task_id}_", suffix="_" + os.path.basename(path))


def check_batch_size(global_batch, strategy):
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ConfigError(f"schedule.batch_size={global_batch} is the global batch and must be divisible by the "
                          f"{replicas} replicas; set schedule.batch_size={max(replicas, global_batch // replicas * replicas)}")


def synchronize_batch_norm(model):
    """Makes every BatchNormalization layer use the statistics of the global batch (all replicas).

    Training then follows one device at the same global batch (at two all-reduces per BatchNorm
    layer per step); without it each replica normalises with its own share of the batch, as
    PyTorch's DistributedDataParallel does by default. The variance is computed in two passes,
    mean((x - mean) ** 2), not as Keras' synchronized mean(x ** 2) - mean ** 2, which cancels
    catastrophically for channels whose mean is large against their spread. Call before the
    model is first traced.
    """
    layers = [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized, layer.fused = True, False
        layer._calculate_mean_and_var = global_batch_moments  # the hook Keras' BatchNormalization calls
    return len(layers)


def global_batch_moments(x, reduction_axes, keep_dims, mask=None):
    """Mean and variance of `x` over `reduction_axes` and over every replica's batch (two passes)."""
    if mask is not None:
        raise ValueError("synchronized BatchNormalization here does not support masks")
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync == 1:
        context = None
    values = tf.cast(x, tf.float32)

    def global_sum(local):
        local = tf.reduce_sum(local, axis=reduction_axes, keepdims=True)
        return context.all_reduce(tf.distribute.ReduceOp.SUM, local) if context else local

    count = global_sum(tf.ones_like(values[..., :1]))
    mean = global_sum(values) / count
    variance = global_sum(tf.math.squared_difference(values, tf.stop_gradient(mean))) / count
    if not keep_dims:
        mean, variance = tf.squeeze(mean, reduction_axes), tf.squeeze(variance, reduction_axes)
    return tf.cast(mean, x.dtype), tf.cast(variance, x.dtype)
