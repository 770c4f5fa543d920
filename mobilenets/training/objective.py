"""The model Keras trains: a built network plus its training objective.

    loss = cross-entropy with label smoothing (Szegedy et al. 2016, sec. 7)
         + weight_decay / 2 * sum(w ** 2)                (coupled L2, see optimization.py)
         + lasso_decay * sum of group-lasso terms         (CondenseNet, Huang et al. 2018, eq. 2)

`Classifier` wraps the network built by `mobilenets.models.registry.build_model`; Keras' own
`train_step` / `test_step` drive it through `compute_loss`, so `fit` handles every
tf.distribute strategy, mixed precision (loss scaling) and XLA. The penalties enter as Keras
regularization losses: Keras scales them for the number of replicas like the data loss.
Checkpoints hold `network`, not the wrapper (see mobilenets/runs.py).

Labels are integer class ids (B,), or soft labels (B, classes) that already sum to 1 (Mixup /
CutMix batches, mobilenets/data/mixing.py, smoothed there): the loss smooths integer labels only,
and top-1 accuracy compares the logits' argmax with the labels' argmax for soft ones.
"""

import tensorflow as tf
import tf_keras as keras

from mobilenets.models.condensation import group_lasso, learned_group_convs
from mobilenets.training.optimization import decayed_variables, weight_decay_penalty


def is_soft(y_true):
    """True for (B, C) soft labels, False for integer ids of shape (B,) or (B, 1) (decided statically)."""
    return y_true.shape.rank == 2 and y_true.shape[-1] is not None and y_true.shape[-1] > 1


class SparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy of logits and integer labels (with optional label smoothing) or soft labels
    (B, C) (taken as they are: the pipeline smoothed them before mixing); float32 math."""

    def __init__(self, num_classes, label_smoothing=0.0, name="cross_entropy"):
        super().__init__(name=name)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)

    def call(self, y_true, y_pred):
        logits = tf.cast(y_pred, tf.float32)
        if is_soft(y_true):
            return tf.nn.softmax_cross_entropy_with_logits(tf.cast(y_true, tf.float32), logits)
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        if not self.label_smoothing:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        targets = tf.one_hot(labels, self.num_classes)
        return keras.losses.categorical_crossentropy(targets, logits, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}


class Top1Accuracy(keras.metrics.Mean):
    """Top-1 accuracy for integer or soft labels (the class of a soft label is its argmax)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if is_soft(y_true):
            labels = tf.argmax(y_true, axis=-1, output_type=tf.int32)
        else:
            labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        predicted = tf.argmax(tf.reshape(y_pred, [tf.shape(y_pred)[0], -1]), axis=-1, output_type=tf.int32)
        return super().update_state(tf.cast(tf.equal(labels, predicted), self.dtype), sample_weight)


class CrossEntropy(keras.metrics.Mean):
    """Mean cross-entropy of logits and integer or soft labels, without label smoothing or penalties: the
    loss evaluate.py reports ('loss' in a run's logs adds the penalties and smoothing)."""

    def __init__(self, name="cross_entropy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(SparseCrossEntropy(int(y_pred.shape[-1])).call(y_true, y_pred), sample_weight)


class Classifier(keras.Model):
    """`network` (raw pixels -> logits) with the loss above; `penalty()` is the regularization part."""

    def __init__(self, network, weight_decay=0.0, decay_bn_and_bias=True, lasso_decay=0.0, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{network.name}_classifier"), **kwargs)
        self.network = network
        self.weight_decay, self.lasso_decay = float(weight_decay), float(lasso_decay)
        self.decay_bn_and_bias = bool(decay_bn_and_bias)

    def call(self, images, training=None):
        return self.network(images, training=training)

    def penalty(self):
        """weight decay + lasso_decay * group lasso, float32 (not yet scaled for replicas)."""
        decayed = decayed_variables(self.network, skip_bn_and_bias=not self.decay_bn_and_bias)
        terms = [weight_decay_penalty(decayed, self.weight_decay)]
        if self.lasso_decay and learned_group_convs(self.network):
            terms.append(self.lasso_decay * group_lasso(self.network))
        return tf.add_n(terms)

    # Logits in float32 before Keras matches the labels' dtype to them: soft labels stay float32
    # under mixed precision (the loss computes in float32 anyway).
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        return self.compiled_loss(y, tf.cast(y_pred, tf.float32), sample_weight,
                                  regularization_losses=[self.penalty()])

    def compute_metrics(self, x, y, y_pred, sample_weight):
        return super().compute_metrics(x, y, tf.cast(y_pred, tf.float32), sample_weight)

    def compile_objective(self, optimizer, label_smoothing=0.0, jit_compile=False, run_eagerly=False):
        """Compiles with the smoothed cross-entropy, top-1 accuracy ('accuracy') and the plain
        cross-entropy ('cross_entropy'), each for integer or soft labels."""
        num_classes = int(self.network.output_shape[-1])
        self.compile(
            optimizer=optimizer,
            loss=SparseCrossEntropy(num_classes, label_smoothing),
            metrics=[Top1Accuracy(name="accuracy"), CrossEntropy()],
            jit_compile=jit_compile,
            run_eagerly=run_eagerly,
        )
        return self
