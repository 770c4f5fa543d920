"""Class names of a model: from a labels file, from the dataset it was trained on, else class_N.

    names = class_names(dataset_labels(None, "folder", "photos/", 3), 3)   # ['daisy', 'rose', 'tulip']

Shared by the TFLite export (the labels it packs) and `mobilenets-predict` (the labels it prints).
"""

from mobilenets.errors import ConfigError

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100's fine labels, in label order (the official batches.meta / meta files).
CIFAR100_LABELS = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl",
    "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair",
    "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin",
    "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp",
    "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck",
    "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television",
    "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf",
    "woman", "worm",
)


def dataset_labels(labels, dataset, data_dir, num_classes):
    """Label names from a file (one per line), else the dataset's own, else None."""
    if labels is not None:
        try:
            with open(labels) as f:
                names = [line.strip() for line in f if line.strip()]
        except OSError as error:
            raise ConfigError(f"cannot read labels file {labels} ({error.strerror}); pass a text file, one name a line")
    elif dataset in ("cifar10", "cifar-10"):
        names = list(CIFAR10_LABELS)
    elif dataset in ("cifar100", "cifar-100"):
        names = list(CIFAR100_LABELS)
    elif dataset == "folder" and data_dir:
        from mobilenets.data.folder import class_names

        names = class_names(data_dir)
    else:
        return None
    if len(names) != num_classes:
        raise ConfigError(f"{len(names)} label names for a model with {num_classes} classes; fix the labels file")
    return names


def class_names(names, num_classes):
    """`names`, or class_0 ... class_{N-1} when no names are known."""
    return list(names) if names else [f"class_{index}" for index in range(num_classes)]
