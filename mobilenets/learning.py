"""Did the model learn? Chance level, constant predictors and overfitting, told from a few numbers.

A model can train without error and learn nothing that holds on new images: validation top-1 at
chance (1 / classes), one class predicted for most images, or a training top-1 far above the
validation one. Training, evaluation and export say so in one line each, with the likely cause
and what to try. Pure Python (no TensorFlow): the commands call it on figures they already have.
"""

import math

CHANCE_MARGIN = 0.02  # points above chance still called chance however many images were scored
OVERFIT_GAP = 0.25  # training top-1 this far above validation top-1 is called overfitting
DOMINANT_SHARE = 0.5  # a class predicted for this share of the images (and 2 / classes) dominates

WHAT_TO_TRY = ("train longer (--epochs), a smaller model (--width 0.35), start from pretrained weights (--weights "
               "imagenet or FILE), and check that each class folder holds what its name says")


def chance(num_classes):
    return 1.0 / num_classes


def chance_band(num_classes, images):
    """Top-1 below which a model is indistinguishable from guessing: chance plus two standard errors of a
    guesser's top-1 on `images` (a binomial), and at least CHANCE_MARGIN."""
    p = chance(num_classes)
    error = math.sqrt(p * (1 - p) / images) if images else 0.0
    return p + max(2 * error, CHANCE_MARGIN)


def at_chance(top1, num_classes, images):
    return num_classes >= 2 and top1 < chance_band(num_classes, images)


def with_chance(top1, num_classes):
    """'0.6406 (chance 0.25, 4 classes)'."""
    return f"{top1:.4f} (chance {chance(num_classes):.4g}, {num_classes} classes)"


TOO_FEW_TO_TELL = 0.75  # a chance band this high: the held-out images cannot tell learning from guessing


def chance_warning(top1, num_classes, images, what="validation top-1"):
    """One line when `top1` (on `images` held-out images) is at chance, or when so few images cannot tell, else None."""
    if not images or not at_chance(top1, num_classes, images):
        return None
    if chance_band(num_classes, images) >= TOO_FEW_TO_TELL:
        return (f"note: {images} held-out images are too few to tell a model that learned from one that guesses "
                f"({what} {top1:.4f}, chance {chance(num_classes):.4g}); add images, or hold out more of them "
                f"(--set data.validation_fraction=0.3)")
    return (f"warning: {what} {top1:.4f} is at chance ({chance(num_classes):.4g} for {num_classes} classes; below "
            f"{chance_band(num_classes, images):.3f} on {images} images a guesser does as well): the model learned "
            f"nothing that holds on images it did not train on. Likely too few training steps, or "
            f"labels that do not match the images; try: {WHAT_TO_TRY}")


def dominant_class_warning(predicted_counts, class_names):
    """One line when one class is predicted for most images (a constant predictor), else None.
    predicted_counts[i]: how many images were predicted as class i."""
    total = sum(predicted_counts)
    if total == 0 or len(predicted_counts) < 2:
        return None
    index = max(range(len(predicted_counts)), key=lambda i: predicted_counts[i])
    share = predicted_counts[index] / total
    if share < max(DOMINANT_SHARE, 2.0 / len(predicted_counts)):
        return None
    name = class_names[index] if index < len(class_names) else str(index)
    return (f"warning: {share:.0%} of the {total} images are predicted as {name!r}: the model mostly answers one "
            f"class whatever the image; try: {WHAT_TO_TRY}")


def overfitting_warning(train_top1, validation_top1):
    """One line when training top-1 is far above validation top-1, else None."""
    if train_top1 is None or validation_top1 is None or train_top1 - validation_top1 < OVERFIT_GAP:
        return None
    return (f"note: training top-1 {train_top1:.4f} against {validation_top1:.4f} on held-out images: the model "
            f"overfits its training images; more images, stronger augmentation (--set data.auto_augment=randaugment), "
            f"fewer epochs or pretrained weights (--weights) help")
