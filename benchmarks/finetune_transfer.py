"""Transfer on real images: pretrain on 5 CIFAR-10 classes, fine-tune on the other 5 with the
`finetune` preset, and compare with training from scratch at the same budget (issue 12).

    python benchmarks/finetune_transfer.py [--width 0.35] [--pretrain-epochs 10] [--epochs 6]
        [--data ../shared/data/cifar10_real_5k.npz] [--work-dir DIR] [--set section.key=value ...] [--json out.json]

The npz file's classes 0-4 and 5-9 become two datasets (labels 0-4 each), each split 85/15
(split seed 0, mobilenets.data.npz); the 15% is held out. Pretraining and the from-scratch run use
the seed's CIFAR recipe (`cifar10_mobilenetv2`: SGD Nesterov, cosine per batch, pad-crop-flip),
with a 1-epoch warm-up, weight decay 5e-4 and BatchNorm momentum 0.9 as benchmarks/train_cifar_real.py.
Fine-tuning starts from the pretrained run (`--weights RUN_DIR`, a new 5-class head), the
`finetune` preset's two phases (head only, then everything at a tenth of the rate) at SGD's rate
instead of Adam's. Both runs of the new classes train `--epochs` epochs of the same batches.
Reports held-out top-1 (last and best epoch) of both. Runs already complete in --work-dir are not
trained again (the trainer finds them done), so other --lr-factor values reuse the pretrained run.
"""

import argparse
import csv
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hparams import apply_overrides, get_preset  # noqa: E402
from mobilenets.io import write_json  # noqa: E402
from mobilenets.runs import LOG_FILE  # noqa: E402
from mobilenets.training import train  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10_real_5k.npz")


def class_subset(data, classes, path):
    """An npz of the images of `classes`, relabelled 0..len(classes)-1."""
    keep = np.isin(data["y"], classes)
    labels = np.searchsorted(np.asarray(classes), data["y"][keep])
    np.savez(path, x=data["x"][keep], y=labels)
    return path


def common(args, data_dir, run_dir, epochs):
    return [f"data.data_dir={data_dir}", f"run.run_dir={run_dir}", "data.dataset=npz", "data.validation_fraction=0.15",
            "model.num_classes=5", "model.name=mobilenetv2", f"model.width_multiplier={args.width}",
            "model.config=cifar", "model.input_size=32", "model.normalization=cifar10", "model.bn_momentum=0.9",
            "model.dropout=0.1", "data.augmentation=cifar", "data.eval_crop_fraction=1.0", "data.shuffle_buffer=5085",
            f"schedule.epochs={epochs}", f"schedule.batch_size={args.batch}", "regularization.weight_decay=5e-4",
            "run.seed=0", "run.log_every=20", *args.overrides]


def from_scratch(args, data_dir, run_dir, epochs):
    return apply_overrides(get_preset("cifar10_mobilenetv2"), common(args, data_dir, run_dir, epochs) + [
        f"optimizer.lr={args.lr}", "schedule.warmup_epochs=1"])


def top1(run_dir):
    rows = list(csv.DictReader(open(os.path.join(run_dir, LOG_FILE))))
    values = [float(r["val_accuracy"]) for r in rows]
    return {"last": values[-1], "best": max(values), "per_epoch": values}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--width", type=float, default=0.35)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6, help="epochs on the new classes (both runs)")
    parser.add_argument("--head-epochs", type=int, default=1)
    parser.add_argument("--lr-factor", type=float, default=0.1, help="finetune.lr_factor: phase 2 rate / --lr")
    parser.add_argument("--work-dir", default=None, help="default: a new temporary directory")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="applied to every run, e.g. run.mixed_precision=mixed_bfloat16")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if not os.path.exists(args.data):
        print(f"error: {args.data} not found (the real-data sample lives in ../shared/data)", file=sys.stderr)
        return 2
    work = args.work_dir or tempfile.mkdtemp(prefix="finetune_transfer_")
    os.makedirs(work, exist_ok=True)
    with np.load(args.data) as data:
        data = {"x": data["x"], "y": data["y"]}
    old = class_subset(data, [0, 1, 2, 3, 4], os.path.join(work, "classes_0_4.npz"))
    new = class_subset(data, [5, 6, 7, 8, 9], os.path.join(work, "classes_5_9.npz"))
    quiet = lambda *_: None  # noqa: E731
    started, seconds = time.perf_counter(), {}
    pretrained = os.path.join(work, "pretrained")
    train(from_scratch(args, old, pretrained, args.pretrain_epochs), verbose=2, log=print)
    seconds["pretrain"] = time.perf_counter() - started
    finetuned = os.path.join(work, f"finetuned_lr_factor_{args.lr_factor:g}")
    config = apply_overrides(get_preset("finetune"), common(args, new, finetuned, args.epochs) + [
        f"model.weights={pretrained}", "optimizer.name=sgd", f"optimizer.lr={args.lr}", "optimizer.nesterov=true",
        "schedule.decay=cosine", f"finetune.head_epochs={args.head_epochs}", f"finetune.lr_factor={args.lr_factor}"])
    mark = time.perf_counter()
    train(config, verbose=2, log=print)
    seconds["finetune"] = time.perf_counter() - mark
    scratch = os.path.join(work, "scratch")
    mark = time.perf_counter()
    train(from_scratch(args, new, scratch, args.epochs), verbose=2, log=quiet)
    seconds["scratch"] = time.perf_counter() - mark
    report = {"pretrained_on_0_4": top1(pretrained), "finetuned_on_5_9": top1(finetuned),
              "scratch_on_5_9": top1(scratch), "seconds": seconds, "width": args.width,
              "pretrain_epochs": args.pretrain_epochs, "epochs": args.epochs, "head_epochs": args.head_epochs,
              "lr_factor": args.lr_factor}
    print(json.dumps(report, indent=2))
    print(f"held-out top-1 on classes 5-9 after {args.epochs} epochs: fine-tuned {report['finetuned_on_5_9']['last']:.1%} "
          f"(best {report['finetuned_on_5_9']['best']:.1%}), from scratch {report['scratch_on_5_9']['last']:.1%} "
          f"(best {report['scratch_on_5_9']['best']:.1%})")
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
