"""Prints parameters and multiply-adds for any set of models; plots them with the published top-1.

    mobilenets-summary mobilenetv2 igcv3 --dataset cifar100
    mobilenets-summary --all --markdown                        # each at its native resolution
    mobilenets-summary --all --plot docs/models_imagenet.png      # top-1 and params vs multiply-adds
"""

import os
import sys

from mobilenets.commands import cli
from mobilenets.models import zoo

DATASETS = {"imagenet": ("imagenet", 1000), "cifar10": ("cifar", 10), "cifar100": ("cifar", 100)}

# Published top-1 (%) at width 1.0, for the plot: ImageNet from the papers (V1 table 8, V2 table 4,
# V3 tables 3 and 4, IGCV3-D table 4 after retraining, V4 table 5), CIFAR from the seed tables (design notes, sec. 3).
PUBLISHED_TOP1 = {
    "imagenet": {"mobilenetv1": 70.6, "mobilenetv2": 72.0, "mobilenetv3_large": 75.2, "mobilenetv3_small": 67.4,
                 "mobilenetv3_large_minimalistic": 72.3, "mobilenetv3_small_minimalistic": 61.9, "igcv3": 72.2,
                 # MobileNetV4 (Qin et al. 2024, table 5), at its native 224 / 256 / 384 pixels
                 "mobilenetv4_conv_small": 73.8, "mobilenetv4_conv_medium": 79.9, "mobilenetv4_conv_large": 82.9,
                 "mobilenetv4_hybrid_medium": 80.7, "mobilenetv4_hybrid_large": 83.4},
    "cifar100": {"mobilenetv1": 77.10, "mobilenetv2": 77.40, "mobilenetv2_lgc": 76.30, "mobilenetv2_lgc_proj": 77.20,
                 "mobilenetv2_gc_lgc": 76.60, "igcv3": 77.95},
    "cifar10": {"mobilenetv2": 94.56, "igcv3": 94.96},
}


def rows(names, dataset="imagenet", width_multiplier=1.0, image_size=None, progress=None, **build_kwargs):
    """(name, input side, parameters, multiply-adds) of each model; progress(line) hears each one built."""
    from mobilenets.models.costs import count
    from mobilenets.models.registry import build_model

    config, num_classes = DATASETS[dataset]
    shape = (image_size, image_size, 3) if image_size else None
    for index, name in enumerate(names):
        if progress:
            progress(f"building {name} ({index + 1} of {len(names)})")
        model = build_model(
            name, num_classes=num_classes, input_shape=shape, config=config, width_multiplier=width_multiplier, **build_kwargs
        )
        cost = count(model)
        yield name, model.input_shape[1], cost.params, cost.madds


def format_table(table, markdown=False):
    header = ("model", "input", "params", "multiply-adds")
    lines = [(name, f"{size}x{size}", f"{params / 1e6:.3f}M", f"{madds / 1e6:.1f}M") for name, size, params, madds in table]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header] + lines)


def plot(table, dataset, path):
    """PNG: published top-1 (where there is one) and parameters, each against multiply-adds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    published = PUBLISHED_TOP1.get(dataset, {})
    figure, (accuracy, size) = plt.subplots(1, 2, figsize=(12, 5))
    for name, _, params, madds in table:
        label = name.replace("mobilenet", "")
        size.scatter(madds / 1e6, params / 1e6, color="C3" if "lgc" in name else "C0")
        size.annotate(label, (madds / 1e6, params / 1e6), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if name in published:
            accuracy.scatter(madds / 1e6, published[name], color="C3" if "lgc" in name else "C0")
            accuracy.annotate(label, (madds / 1e6, published[name]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    accuracy.set(title=f"published top-1, {dataset}", xlabel="multiply-adds (M)", ylabel="top-1 (%)")
    size.set(title=f"parameters, {dataset} head", xlabel="multiply-adds (M)", ylabel="parameters (M)")
    for axis in (accuracy, size):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv=None):
    from mobilenets.errors import MobilenetsError

    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("models", nargs="*", help="model names (default: every registered model)")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--dataset", default="imagenet", choices=sorted(DATASETS))
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--expansion", type=float, default=None, help="expansion ratio t (MobileNetV2 family)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--plot", metavar="PNG", default=None, help="also write top-1 and parameters vs multiply-adds")
    args = parser.parse_args(argv)
    names = sorted(zoo.MODELS) if args.all or not args.models else args.models
    unknown = [name for name in names if name not in zoo.MODELS]
    if unknown:
        print(f"error: unknown model {unknown[0]!r}; choose one of: {', '.join(sorted(zoo.MODELS))}", file=sys.stderr)
        return 2
    progress = cli.terminal_progress()
    if progress:
        progress("loading TensorFlow")
    cli.import_quietly("mobilenets.models.registry")
    try:
        with cli.held_stderr():  # TensorFlow's log lines while the models build
            table = list(rows(names, args.dataset, args.width, args.image_size, progress, expansion=args.expansion))
    except MobilenetsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(table, args.markdown))
    if args.plot:
        plot(table, args.dataset, args.plot)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
