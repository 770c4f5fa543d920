"""The model Keras trains: a built network plus its training objective.

    loss = cross-entropy with label smoothing (Szegedy et al. 2016, sec. 7)
         + weight_decay / 2 * sum(w ** 2)                (coupled L2, see optimization.py)
         + lasso_decay * sum of group-lasso terms         (CondenseNet, Huang et al. 2018, eq. 2)

`Classifier` wraps the network built by `mobilenets.registry.build_model`; Keras' own
`train_step` / `test_step` drive it through `compute_loss`, so `fit` handles every
tf.distribute strategy, mixed precision (loss scaling) and XLA. The penalties enter as Keras
regularization losses: Keras scales them for the number of replicas like the data loss.
Checkpoints hold `network`, not the wrapper (see mobilenets/runs.py).
"""

import tensorflow as tf
import tf_keras as keras

from mobilenets.condense import group_lasso, learned_group_convs
from mobilenets.training.optimization import decayed_variables, weight_decay_penalty


class SparseCrossEntropy(keras.losses.Loss):
    """Cross-entropy of integer labels and logits, with optional label smoothing; float32 math."""

    def __init__(self, num_classes, label_smoothing=0.0, name="cross_entropy"):
        super().__init__(name=name)
        self.num_classes, self.label_smoothing = int(num_classes), float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        logits = tf.cast(y_pred, tf.float32)
        if not self.label_smoothing:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        targets = tf.one_hot(labels, self.num_classes)
        return keras.losses.categorical_crossentropy(targets, logits, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "label_smoothing": self.label_smoothing}


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

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):
        return self.compiled_loss(y, y_pred, sample_weight, regularization_losses=[self.penalty()])

    def compile_objective(self, optimizer, label_smoothing=0.0, jit_compile=False, run_eagerly=False):
        """Compiles with the smoothed cross-entropy and top-1 accuracy ('accuracy')."""
        num_classes = int(self.network.output_shape[-1])
        self.compile(
            optimizer=optimizer,
            loss=SparseCrossEntropy(num_classes, label_smoothing),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=jit_compile,
            run_eagerly=run_eagerly,
        )
        return self
