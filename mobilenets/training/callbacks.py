"""Keras callbacks of a training run: condensation, divergence guard, checkpoints and logs.

All of them run between steps in cross-replica context, so a change they make to a variable
(an LGC mask, say) reaches every replica before the next step.
"""

import csv
import io
import math
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow.core.framework import summary_pb2

from mobilenets.models.condensation import condensation_stages_done, condense, learned_group_convs, sparsity
from mobilenets.errors import TrainingDiverged
from mobilenets.models.layers import leaf_layers
from mobilenets.io import write_text


def global_step(model):
    """Optimizer steps taken so far (the counter the learning-rate schedule reads)."""
    return int(model.optimizer.iterations.numpy())


def rate_of_last_step(learning_rate, model):
    """The learning rate the optimizer's last step ran with: the schedule at the step counter before
    that step (the counter's current value is the next step's)."""
    return float(learning_rate(max(global_step(model) - 1, 0)))


class EpochLogs(keras.callbacks.Callback):
    """Adds the learning rate the epoch ended with (its last step's) and, for LGC models, the masked
    fraction to the epoch logs.

    Place it before the callbacks that write the logs.
    """

    def __init__(self, network, learning_rate):
        super().__init__()
        self.network, self.learning_rate = network, learning_rate
        self.has_lgc = bool(learned_group_convs(network))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["learning_rate"] = rate_of_last_step(self.learning_rate, self.model)
        if self.has_lgc:
            logs["lgc_sparsity"] = sparsity(self.network)


class EpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting epochs out of the run's total (each epoch is one `fit` call)."""

    def __init__(self, total_epochs):
        super().__init__(count_mode="steps")
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.total_epochs})


class Condensation(keras.callbacks.Callback):
    """Runs one condensation stage (mobilenets.models.condensation.condense) at each step of `schedule`.

    Stage k happens once the optimizer has taken schedule[k] steps; the stages already done are
    read from the LGC layers' `stage` variables, so a resumed run neither repeats nor skips one.
    """

    def __init__(self, network, schedule, log=print):
        super().__init__()
        self.network, self.schedule, self.log = network, sorted(schedule), log

    def on_train_begin(self, logs=None):
        self.done = condensation_stages_done(self.network)

    def on_train_batch_end(self, batch, logs=None):
        if self.done >= len(self.schedule) or global_step(self.model) < self.schedule[self.done]:
            return
        step = global_step(self.model)
        while self.done < len(self.schedule) and step >= self.schedule[self.done]:
            condense(self.network)
            self.done += 1
            self.log(f"condensation stage {self.done}/{len(self.schedule)} at step {step}: "
                     f"{sparsity(self.network):.1%} of the learned-group-conv connections masked")


class DivergenceGuard(keras.callbacks.Callback):
    """Stops at the first step whose loss is NaN or infinite, before anything saves that state.

    policy 'raise': raises TrainingDiverged (naming the step); 'stop' and 'restart': ends the
    epoch quietly (the trainer then stops, or restarts from the last good checkpoint).
    `diverged` is the message once it happened (checkpoint writers check it).
    """

    def __init__(self, policy="raise", where_to_resume=lambda: "no checkpoint yet"):
        super().__init__()
        self.policy, self.where_to_resume = policy, where_to_resume
        self.diverged = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        self.diverged = (
            f"the loss became {float(loss)} at step {global_step(self.model)} (batch {batch + 1} of epoch "
            f"{self.epoch + 1}); this state was not saved, the last good checkpoint is {self.where_to_resume()}: "
            f"run the same command with --set run.nan_policy=restart to continue from it with a lower learning "
            f"rate (or lower optimizer.lr, add schedule.warmup_epochs or optimizer.clipnorm, and add --resume)"
        )
        self.model.stop_training = True
        if self.policy == "raise":
            raise TrainingDiverged(self.diverged)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch


class SaveCheckpoints(keras.callbacks.Callback):
    """Saves 'best' (on a better val_accuracy) and 'last' (every `every` epochs and the final one)."""

    def __init__(self, state, every, final_epoch, guard, log=print):
        super().__init__()
        self.state, self.every, self.final_epoch, self.guard, self.log = state, every, final_epoch, guard, log

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.diverged:
            return
        logs = logs or {}
        done = epoch + 1
        if "val_accuracy" in logs:
            self.state.save_best(done, float(logs["val_accuracy"]))
            logs["best_val_accuracy"] = float(self.state.best_top1.numpy())
        if done % self.every == 0 or done == self.final_epoch:
            self.state.save_last(done)


class ReseedDropout(keras.callbacks.Callback):
    """Reseeds every dropout generator at each epoch from (seed, epoch), so a resumed run draws
    the dropout masks an uninterrupted one draws. Needs layers built with
    keras.backend.experimental.enable_tf_random_generator() (stateful tf.random.Generator)."""

    def __init__(self, network, seed_of_epoch):
        super().__init__()
        self.seed_of_epoch = seed_of_epoch
        generators = [getattr(getattr(layer, "_random_generator", None), "_generator", None)
                      for layer in leaf_layers(network)]
        self.generators = [g for g in generators if isinstance(g, tf.random.Generator)]

    def on_epoch_begin(self, epoch, logs=None):
        for index, generator in enumerate(self.generators):
            generator.reset_from_seed(self.seed_of_epoch(epoch) + index)


class CsvLog(keras.callbacks.Callback):
    """RUN_DIR/log.csv, one row per epoch (epoch, step, seconds, then the epoch logs), rewritten
    atomically; rows of epochs a resumed or restarted run repeats are replaced."""

    def __init__(self, path, first_epoch):
        super().__init__()
        self.path = path
        self.rows = [row for row in self._read() if int(row.get("epoch", 0)) <= first_epoch]

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _read(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def on_epoch_end(self, epoch, logs=None):
        seconds = round(time.perf_counter() - self._start, 3)
        self.rows = [row for row in self.rows if int(row["epoch"]) <= epoch]  # a restart repeats epochs
        self.rows.append({"epoch": epoch + 1, "step": global_step(self.model), "seconds": seconds,
                          **{k: _number(v) for k, v in (logs or {}).items()}})
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, text.getvalue())


# TensorBoard's scalar-plugin metadata (ScalarPluginData version 0 serialises to b""): written with
# TensorFlow's own summary op, so event files need no `tensorboard` package (TF 2.21 does not bring it).
_SCALAR_METADATA = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def write_scalar(name, value):
    """Writes one TensorBoard scalar to the default summary writer, at its default step."""
    tf.summary.write(name, tf.constant(value, tf.float32), metadata=_SCALAR_METADATA)


class TensorBoardLog(keras.callbacks.Callback):
    """RUN_DIR/logs/{train,validation}: epoch_* scalars (loss, accuracy, learning_rate, lgc_sparsity)
    at step = epoch, and batch_loss / batch_accuracy / learning_rate (the rate of the step just taken)
    every `every` optimizer steps (Keras' TensorBoard callback layout)."""

    def __init__(self, log_dir, every, learning_rate):
        super().__init__()
        self.every, self.learning_rate = every, learning_rate
        self.train = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.validation = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if step % self.every:
            return
        with self.train.as_default(step=step):
            for key in ("loss", "accuracy"):
                if key in (logs or {}):
                    write_scalar(f"batch_{key}", _number(logs[key]))
            write_scalar("learning_rate", rate_of_last_step(self.learning_rate, self.model))

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            validation = key.startswith("val_")
            if not np.isscalar(_number(value)):
                continue
            with (self.validation if validation else self.train).as_default(step=epoch + 1):
                write_scalar("epoch_" + (key[4:] if validation else key), _number(value))
        self.train.flush()
        self.validation.flush()

    def close(self):
        self.train.close()
        self.validation.close()


def _number(value):
    value = value.numpy() if hasattr(value, "numpy") else value
    return float(value) if np.ndim(value) == 0 and not isinstance(value, str) else value
