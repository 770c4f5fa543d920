"""One training run of a `hparams.Config`, end to end, with Keras `fit`.

    from mobilenets.training import train
    result = train(get_preset("smoke"))        # or Trainer(config).fit()

The run directory follows mobilenets/runs.py (model.json, config.json, checkpoints/, best/,
logs/, log.csv). Each epoch is one `fit` call on a pipeline seeded by (run.seed, epoch)
(see inputs.py); together with the checkpointed optimizer, step counter, LGC masks and the
per-epoch dropout seeds, a run killed at any point and started again with the same command
ends with the weights an uninterrupted run reaches. One process holds a run directory at a time
(lock.py).

Fine-tuning (model.weights, config.finetune; the TensorFlow transfer-learning tutorial's two
phases): the network starts from pretrained weights with a new classifier; for the first
finetune.head_epochs epochs only the classifier trains, every other layer frozen (and so its
BatchNorm in inference mode); then the layers from finetune.unfreeze_from on train as well, at
the lower rate of optimization.learning_rate_schedule. The phase is a function of the epoch, so
resuming puts a run back in its phase.

BatchNorm statistics (run.precise_bn_images, precise_bn.py): before each validation and each
checkpoint every BatchNorm's moving mean and variance are recomputed over training batches under the
current weights (for the weight average when there is one), so that a short schedule validates,
exports and predicts with statistics that fit its weights.

Weight EMA (regularization.ema_decay > 0, ema.py): an exponential moving average of the weights
is updated after every step and checkpointed with the run; validation (and so best/) uses the
averaged weights, as do evaluation, export and conversion of the run (mobilenets/runs.py), and
the network a finished run returns.
"""

import contextlib
import dataclasses
import os
import shutil
from typing import Optional

import tensorflow as tf
import tf_keras as keras

from mobilenets.models.condensation import condensenet_schedule, learned_group_convs
from mobilenets.models.costs import count
from mobilenets.models.layers import leaf_layers
from mobilenets.errors import ConfigError
from mobilenets.training.starting_weights import load_starting_weights
from mobilenets.models.registry import build_model
from mobilenets.runs import CONFIG_FILE, LOG_FILE, TENSORBOARD_DIR, save_model_spec
from mobilenets.training import callbacks as cb
from mobilenets.training import lock
from mobilenets.training.checkpointing import TrainingState
from mobilenets.training.distribute import check_batch_size, is_chief, make_strategy, synchronize_batch_norm
from mobilenets.training.ema import AverageWeights, WeightAverage
from mobilenets.training.inputs import (DROPOUT_STREAM, epoch_seed, plan_data, precise_bn_batches, training_dataset,
                                        validation_dataset)
from mobilenets.training.precise_bn import PreciseBatchNorm
from mobilenets.training.objective import Classifier
from mobilenets.training.optimization import coupled_weight_decay, learning_rate_schedule, make_optimizer
from mobilenets.training.rundir import check_resumable, remove_unused, resolve_run_dir


@dataclasses.dataclass
class TrainingResult:
    run_dir: str
    epochs_done: int
    history: list  # the epoch logs of the epochs this call trained
    best_top1: Optional[float]
    diverged: Optional[str]  # the message, when the loss became NaN/inf and the run stopped
    network: keras.Model  # with the averaged weights when the run keeps an EMA (and did not diverge)
    num_classes: int = 0
    validation_examples: Optional[int] = None  # images the run validates on (None: unknown or none)

    def last(self, key):
        """The last trained epoch's `key` ('accuracy', 'val_accuracy'...), None when this call trained none."""
        value = self.history[-1].get(key) if self.history else None
        return None if value is None else float(value)


def build_kwargs(config, num_classes):
    """`build_model` keyword arguments of config.model (None groups / condense_factor left out)."""
    m = config.model
    kwargs = dict(name=m.name, num_classes=num_classes, input_shape=(m.input_size, m.input_size, 3),
                  width_multiplier=m.width_multiplier, dropout=m.dropout, config=m.config, expansion=m.expansion,
                  normalization=m.normalization, bn_momentum=m.bn_momentum)
    kwargs.update({k: getattr(m, k) for k in ("groups", "condense_factor") if getattr(m, k) is not None})
    if m.drop_path_rate:  # left out at 0, so model.json of runs without it stays as it was
        kwargs["drop_path_rate"] = m.drop_path_rate
    kwargs.update({key: getattr(m, key) for key, default in (("bn_epsilon", 1e-3), ("padding", "same"))
                   if getattr(m, key) != default})  # likewise; timm's weights set them (settings.py)
    return kwargs


@contextlib.contextmanager
def layer_construction(mixed_precision):
    """Layers built inside use `mixed_precision` (None: float32) and tf.random.Generator-based
    dropout (reseedable, see callbacks.ReseedDropout); the global settings are restored after."""
    policy = keras.mixed_precision.global_policy()
    generator_was_enabled = keras.backend.experimental.is_tf_random_generator_enabled()
    keras.mixed_precision.set_global_policy(mixed_precision or "float32")
    keras.backend.experimental.enable_tf_random_generator()
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        if not generator_was_enabled:
            keras.backend.experimental.disable_tf_random_generator()


def condensation_steps(config, network, steps_per_epoch):
    """Optimizer steps after which to condense: CondenseNet's progress k / (2 (C - 1)), or the
    ends of lgc.fixed_epochs. Empty for models without learned group convolutions. When
    fine-tuning, CondenseNet's progress is that of the unfrozen phase (the backbone is frozen before)."""
    layers = learned_group_convs(network)
    if not layers:
        return []
    factor = layers[0].condense_factor
    if config.lgc.schedule == "fixed_epochs":
        if len(config.lgc.fixed_epochs) != factor - 1:
            raise ConfigError(f"lgc.fixed_epochs needs {factor - 1} epochs (condense factor {factor} - 1); "
                              f"got {list(config.lgc.fixed_epochs)}")
        return [epoch * steps_per_epoch for epoch in config.lgc.fixed_epochs]
    head = config.finetune.head_epochs * steps_per_epoch
    return [head + step for step in condensenet_schedule(factor, config.schedule.epochs * steps_per_epoch - head)]


HEAD = "logits"  # the classifier every model of ours ends with (mobilenets/builder.py)


def phase_layers(network, phase, unfreeze_from=None):
    """Names of the top-level layers that train in fine-tuning phase 1 (the classifier) or 2 (the
    layers from `unfreeze_from` on, all when None)."""
    names = [layer.name for layer in network.layers]
    if unfreeze_from is not None and unfreeze_from not in names:
        raise ConfigError(f"finetune.unfreeze_from={unfreeze_from!r} is not a layer of {network.name}; choose one "
                          f"of {', '.join(n for n in names if network.get_layer(n).weights)}")
    if phase == 1:
        return [HEAD]
    return names[names.index(unfreeze_from):] if unfreeze_from else names


class Trainer:
    """Builds everything a run needs (strategy, data plan, network, optimizer, state) and resumes
    from the run directory's last checkpoint when there is one; `fit()` trains the remaining epochs.

    run_eagerly: run the train step eagerly (debugging, tiny tests). sync_batchnorm: with several
    replicas, normalise over the global batch (see distribute.synchronize_batch_norm).
    """

    def __init__(self, config, strategy=None, *, run_eagerly=False, sync_batchnorm=False, log=print):
        self.run_eagerly, self.phase = run_eagerly, None
        self.strategy = strategy or make_strategy(config.run.strategy)
        self.config = config = resolve_run_dir(config)
        self.run_dir, self.log = config.run.run_dir, log
        self.chief = is_chief(self.strategy)
        self.locked, self.created, self.tensorboard = False, None, None
        self._lock()
        try:
            self._build(config, run_eagerly, sync_batchnorm)
        except BaseException:
            self._fail()
            raise

    def _lock(self):
        """Holds the run directory (lock.py) so that a second process on it refuses; chief only."""
        if self.chief and not self.locked:
            self.created = lock.acquire(self.run_dir) or self.created
            self.locked = True

    def close(self):
        """Gives the run directory back (fit does this when it ends)."""
        if self.locked:
            lock.release(self.run_dir)
            self.locked = False

    def _fail(self):
        """After an error: gives the run directory back, and removes it when this run created it and
        wrote no checkpoint (so a failed start leaves nothing behind)."""
        self.close()
        if self.tensorboard:
            self.tensorboard.close()
        remove_unused(self.run_dir, self.created)

    def _build(self, config, run_eagerly, sync_batchnorm):
        check_batch_size(config.schedule.batch_size, self.strategy)
        resuming = check_resumable(config)
        self.plan = plan_data(config)
        keras.utils.set_random_seed(config.run.seed)
        with self.strategy.scope(), layer_construction(config.run.mixed_precision):
            self.network = build_model(**build_kwargs(config, self.plan.num_classes))
            if sync_batchnorm and self.strategy.num_replicas_in_sync > 1:
                synchronize_batch_norm(self.network)
            if config.model.weights and not resuming:  # a resumed run has them in its checkpoint
                m = config.model
                source = load_starting_weights(self.network, m.name, m.weights, m.width_multiplier,
                                               (m.input_size, m.input_size, 3), self.plan.num_classes,
                                               build_kwargs(config, self.plan.num_classes))
                self.log(f"starting from {source}")
            if config.finetune.head_epochs:
                phase_layers(self.network, 2, config.finetune.unfreeze_from)  # check the name now
            reg = config.regularization
            self.ema = None
            if reg.ema_decay:  # the average lives in a second copy of the architecture (ema.py)
                average = build_model(**build_kwargs(config, self.plan.num_classes))
                self.ema = WeightAverage(self.network, average, reg.ema_decay, reg.ema_warmup)
            self.classifier = Classifier(self.network, coupled_weight_decay(config),
                                         not reg.weight_decay_skip_bn_and_bias,
                                         config.lgc.lasso_decay if config.model.is_lgc else 0.0)
            self.lr_scale = tf.Variable(1.0, trainable=False, name="lr_scale")
            self.learning_rate = learning_rate_schedule(config, self.plan.steps_per_epoch, self.lr_scale)
            optimizer = make_optimizer(config, self.learning_rate)
            self.classifier.compile_objective(optimizer, reg.label_smoothing, config.run.xla, run_eagerly)
            self.classifier.optimizer.build(self.classifier.trainable_variables)
        self.state = TrainingState(self.network, self.classifier.optimizer, self.lr_scale, self.run_dir,
                                   self.strategy, self.ema)
        self.start_epoch = self.state.restore_latest(self.log) if resuming else 0
        self.condensation_steps = condensation_steps(config, self.network, self.plan.steps_per_epoch)
        if self.chief:
            config.save(os.path.join(self.run_dir, CONFIG_FILE))
            save_model_spec(self.run_dir, **build_kwargs(config, self.plan.num_classes))
        self._announce(resuming)

    def _announce(self, resuming):
        c, p = self.config, self.plan
        where = f"resuming after epoch {self.start_epoch}" if resuming else "starting"
        epochs = f"{c.schedule.epochs} epoch{'' if c.schedule.epochs == 1 else 's'}"
        params = count(self.network).params  # trainable, BatchNorm statistics excluded: evaluate's figure
        self.log(f"{c.model.name} ({params:,} parameters) on {c.data.dataset}: "
                 f"{epochs} x {p.steps_per_epoch} steps of {c.schedule.batch_size} images on "
                 f"{self.strategy.num_replicas_in_sync} replica(s); {where} in {self.run_dir}")

    def callbacks(self):
        """The run's callbacks, in the order they must see each batch and epoch."""
        c = self.config
        self.guard = cb.DivergenceGuard(c.run.nan_policy, lambda: self.state.latest or "none (no epoch finished)")
        run = [
            cb.EpochLogs(self.network, self.learning_rate),
            cb.EpochProgbar(c.schedule.epochs),
            self.guard,
            cb.Condensation(self.network, self.condensation_steps, self.log),
            *([AverageWeights(self.ema)] if self.ema else []),
            *([PreciseBatchNorm(self.network, lambda epoch: precise_bn_batches(c, self.plan, epoch), self.ema)]
              if c.run.precise_bn_images else []),
            cb.ReseedDropout(self.network, lambda epoch: epoch_seed(c.run.seed, epoch, stream=DROPOUT_STREAM)),
            cb.SaveCheckpoints(self.state, c.run.checkpoint_every, c.schedule.epochs, self.guard),
        ]
        if self.chief:
            self.tensorboard = cb.TensorBoardLog(os.path.join(self.run_dir, TENSORBOARD_DIR), c.run.log_every,
                                                 self.learning_rate)
            run += [cb.CsvLog(os.path.join(self.run_dir, LOG_FILE), self.start_epoch), self.tensorboard]
        return run

    def fit(self, callbacks=(), verbose="auto"):
        """Trains epochs start_epoch .. schedule.epochs - 1; returns a TrainingResult."""
        self._lock()
        try:
            return self._fit(callbacks, verbose)
        except BaseException:
            self._fail()
            raise
        finally:
            self.close()

    def _fit(self, callbacks, verbose):
        c = self.config
        epochs, history = c.schedule.epochs, []
        if self.start_epoch >= epochs:
            self.log(f"{self.run_dir} has already trained all {epochs} epochs; nothing to do")
            return self._result(history, diverged=None)
        run_callbacks = self.callbacks() + list(callbacks)
        validation = validation_dataset(c, self.plan)
        epoch, restarts = self.start_epoch, 0
        while epoch < epochs:
            self._set_phase(epoch)
            due = validation is not None and ((epoch + 1) % c.run.eval_every == 0 or epoch + 1 == epochs)
            fitted = self.classifier.fit(
                training_dataset(c, self.plan, epoch),
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=self.plan.steps_per_epoch,
                validation_data=validation if due else None,
                callbacks=run_callbacks,
                verbose=verbose if self.chief else 0,
            )
            history.append({k: v[-1] for k, v in fitted.history.items()})
            epoch += 1
            if self.classifier.stop_training and not self.guard.diverged:
                self.log(f"stopped by a callback after epoch {epoch}")
                break
            if self.guard.diverged:
                if c.run.nan_policy != "restart" or restarts == c.run.nan_restarts or not self.state.latest:
                    self.log(f"stopped: {self.guard.diverged}")
                    break
                restarts += 1
                epoch = self._restart_from_last_good_checkpoint()
        self._clean_up_worker_dirs()
        return self._result(history, self.guard.diverged)

    def _set_phase(self, epoch):
        """Fine-tuning (config.finetune): before epoch head_epochs only the classifier trains, the
        frozen layers' BatchNorm in inference mode (Keras runs a non-trainable BatchNormalization
        so); from then on the layers from finetune.unfreeze_from on train as well."""
        f = self.config.finetune
        phase = (1 if epoch < f.head_epochs else 2) if f.head_epochs else None
        if phase == self.phase:
            return
        self.phase = phase
        training = set(phase_layers(self.network, phase, f.unfreeze_from))
        for layer in self.network.layers:
            layer.trainable = layer.name in training
            if phase == 2 and f.batch_norm == "frozen" and layer.trainable:
                for leaf in leaf_layers(layer) or [layer]:
                    if isinstance(leaf, keras.layers.BatchNormalization):
                        leaf.trainable = False  # inference mode, pretrained statistics (finetune.batch_norm)
        c = self.config
        self.classifier.compile_objective(self.classifier.optimizer, c.regularization.label_smoothing, c.run.xla,
                                          self.run_eagerly)  # a new train step for the new trainable set
        trained = sum(int(tf.size(v)) for v in self.network.trainable_variables)
        what = "the classifier only, backbone frozen" if phase == 1 else (
            f"from {f.unfreeze_from} on" if f.unfreeze_from else "every layer")
        self.log(f"fine-tuning phase {phase} from epoch {epoch + 1}: training {what} ({trained:,} parameters)")

    def _restart_from_last_good_checkpoint(self):
        """Reloads the last complete checkpoint, lowers the learning rate by run.nan_lr_factor and
        returns the epoch to continue from (run.nan_policy=restart)."""
        path = self.state.latest
        epoch = self.state.restore(path, self.log)
        self.lr_scale.assign(self.lr_scale * self.config.run.nan_lr_factor)
        self.log(f"{self.guard.diverged.split(';')[0]}; restarting from {path} (epoch {epoch}) with the learning "
                 f"rate times {float(self.lr_scale.numpy()):g}")
        self.guard.diverged = None
        return epoch

    def _result(self, history, diverged):
        if self.ema and not diverged:
            self.ema.copy_to_network()
        best = float(self.state.best_top1.numpy())
        return TrainingResult(self.run_dir, int(self.state.epoch.numpy()), history, best if best >= 0 else None,
                              diverged, self.network, self.plan.num_classes, self.plan.validation_examples)

    def _clean_up_worker_dirs(self):
        if not self.chief:
            for directory in self.state.private_dirs():
                shutil.rmtree(directory, ignore_errors=True)


def train(config, *, strategy=None, run_eagerly=False, sync_batchnorm=False, callbacks=(), verbose="auto",
          log=print):
    """Trains `config` (a hparams.Config) and returns a TrainingResult; see Trainer."""
    trainer = Trainer(config, strategy, run_eagerly=run_eagerly, sync_batchnorm=sync_batchnorm, log=log)
    return trainer.fit(callbacks, verbose)
