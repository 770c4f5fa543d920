"""Prints parameters and multiply-adds for any set of models.

    python -m mobilenets.summary mobilenetv2 igcv3 --dataset cifar100
    python -m mobilenets.summary --all --markdown
"""

import argparse
import os
import sys

DATASETS = {"imagenet": ("imagenet", 1000), "cifar10": ("cifar", 10), "cifar100": ("cifar", 100)}


def rows(names, dataset="imagenet", width_multiplier=1.0, image_size=None, **build_kwargs):
    from mobilenets.flops import count
    from mobilenets.registry import build_model

    config, num_classes = DATASETS[dataset]
    shape = (image_size, image_size, 3) if image_size else None
    for name in names:
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


def main(argv=None):
    from mobilenets.errors import MobilenetsError
    from mobilenets.registry import list_models

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"model names: {', '.join(list_models())}")
    parser.add_argument("--all", action="store_true", help="every registered model")
    parser.add_argument("--dataset", default="imagenet", choices=sorted(DATASETS))
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--expansion", type=float, default=None, help="expansion ratio t (MobileNetV2 family)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    names = list_models() if args.all or not args.models else args.models
    try:
        table = list(rows(names, args.dataset, args.width, args.image_size, expansion=args.expansion))
    except MobilenetsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(table, args.markdown))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
