"""What a run saves, in the layout of mobilenets/runs.py.

    RUN_DIR/checkpoints/ckpt-E   model (LGC masks and stages included), optimizer (step counter,
                                 momenta, loss scale), epochs done, best top-1, learning-rate factor,
                                 and with regularization.ema_decay the weight average (ema/average/,
                                 a complete model: see ema.py): the last few, for resume
    RUN_DIR/best/ckpt-E          model, epochs done and top-1 of the best validation top-1; with
                                 EMA on, `model` is the average (the weights that were validated)

tf.train.CheckpointManager writes its index only after the data files are complete, so a run
killed while saving resumes from the previous checkpoint; a failed write (full disk) removes
its partial files and leaves the previous checkpoint in place.
"""

import glob
import os
import shutil

import tensorflow as tf

from mobilenets.errors import CheckpointError, first_line
from mobilenets.runs import CHECKPOINTS
from mobilenets.training.distribute import writable_dir

KEEP_LAST = 3


class TrainingState:
    """The checkpointed state of a run: `network`, `optimizer`, `epoch` (epochs done), `best_top1`,
    `lr_scale` (the learning-rate factor of divergence restarts) and `ema` (an ema.WeightAverage, or
    None)."""

    def __init__(self, network, optimizer, lr_scale, run_dir, strategy, ema=None):
        with strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.best_top1 = tf.Variable(-1.0, dtype=tf.float32, trainable=False, name="best_top1")
        self.network, self.optimizer, self.ema = network, optimizer, ema
        self.last_dir = os.path.join(run_dir, CHECKPOINTS["last"])
        self.best_dir = os.path.join(run_dir, CHECKPOINTS["best"])
        state = dict(model=network, optimizer=optimizer, epoch=self.epoch, best_top1=self.best_top1,
                     lr_scale=lr_scale)
        self._without_ema = tf.train.Checkpoint(**state)  # reads checkpoints written before EMA was on
        self._last = tf.train.CheckpointManager(
            tf.train.Checkpoint(**state, **({"ema": ema.checkpointable} if ema else {})),
            writable_dir(self.last_dir, strategy), max_to_keep=KEEP_LAST)
        self._best = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=ema.average if ema else network, epoch=self.epoch, top1=self.best_top1),
            writable_dir(self.best_dir, strategy), max_to_keep=1)

    def private_dirs(self):
        """Directories this worker saves into that are not the run's (non-chief workers only)."""
        return [m.directory for m, real in ((self._last, self.last_dir), (self._best, self.best_dir))
                if m.directory != real]

    @property
    def latest(self):
        """Prefix of the newest complete 'last' checkpoint, or None."""
        return tf.train.latest_checkpoint(self.last_dir)

    def restore(self, path, log=print):
        """Loads everything from checkpoint `path`; returns the number of epochs it had done. A
        checkpoint without a weight average (EMA turned on by --resume) starts the average there."""
        if self.ema and not any(key.startswith("ema/") for key, _ in tf.train.list_variables(path)):
            self._without_ema.restore(path).assert_existing_objects_matched()
            self.ema.reset()
            log(f"{os.path.basename(path)} holds no weight average: the average starts from its weights")
        else:
            self._last.checkpoint.restore(path).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    def restore_latest(self, log=print):
        """Restores the newest readable 'last' checkpoint, skipping damaged ones (say, truncated
        by a failing disk); returns the number of epochs it had done. CheckpointError if none reads."""
        problems = []
        for path in reversed(self._last.checkpoints or [self.latest]):
            try:
                epochs = self.restore(path, log)
            except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:  # IndexError: truncated
                problems.append(f"{os.path.basename(path)}: {first_line(error)}")
                log(f"warning: checkpoint {path} cannot be read ({first_line(error)}); trying the one before")
                continue
            return epochs
        raise CheckpointError(f"no checkpoint in {self.last_dir} can be read ({'; '.join(problems)}); "
                              f"start again with another --run-dir")

    def save_last(self, epochs_done):
        self.epoch.assign(epochs_done)
        return self._save(self._last, epochs_done)

    def save_best(self, epochs_done, top1):
        """Saves the model as 'best' when `top1` beats the best so far; returns True if it did."""
        if top1 <= float(self.best_top1.numpy()):
            return False
        self.epoch.assign(epochs_done)
        self.best_top1.assign(top1)
        self._save(self._best, epochs_done)
        return True

    def _save(self, manager, number):
        """manager.save; on a failed write (full disk...) removes the partial files and raises a
        CheckpointError: the manager's index still names the previous, complete checkpoint."""
        if self.ema:
            self.ema.sync()  # the average carries the current LGC masks
        try:
            return manager.save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:
            prefix = os.path.join(manager.directory, f"ckpt-{number}")
            for partial in glob.glob(prefix + ".*") + glob.glob(prefix + "_temp*"):
                if os.path.isdir(partial):
                    shutil.rmtree(partial, ignore_errors=True)
                else:
                    os.remove(partial)
            previous = manager.latest_checkpoint or "none yet"
            raise CheckpointError(f"could not write checkpoint {prefix} ({first_line(error)}); the previous "
                                  f"checkpoint ({previous}) is intact: free disk space and run the same command "
                                  f"again to resume") from None

