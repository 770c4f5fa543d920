"""Every registered model through every export mode, checked against Keras: does it convert, does
it compute what Keras computes, how big and how fast is it?

    python benchmarks/export_modes.py                          # all models, CIFAR config 32x32, width 0.5
    python benchmarks/export_modes.py --models mobilenetv2 igcv3 --modes none int8 --input-size 224 --config imagenet

Random-init models, BatchNorm statistics taken from a batch of synthetic images and the
classifier scaled so that the logits spread like a trained model's (standard deviation 4;
a random model's near-tied logits would make every relative check noise); learned-group-conv models are condensed (random masks) and converted to standard group
convolutions first, as a phone gets them. int8 and QAT calibrate (and QAT fine-tunes, --qat-steps)
on synthetic images; parity is on the synthetic validation split. Real-image agreement of
quantized trained models is benchmarks/quantization_accuracy.py's.

parity: float32 gives max |logit diff| / largest |logit| (bound 1e-4), float16 max |logit diff| /
logit range (bound 1e-2, mobilenets.deploy.export.check_parity); the quantized modes give
top-1 agreement with the float Keras model (random-init models have tiny margins, so this is a
does-it-run check here, not the 97% bound).
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


LOGIT_SPREAD = 4.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    parser.add_argument("--modes", nargs="+", default=["none", "float16", "dynamic", "int8", "qat"])
    parser.add_argument("--config", default="cifar", choices=("cifar", "imagenet"))
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--width-multiplier", type=float, default=0.5)
    parser.add_argument("--qat-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latency-runs", type=int, default=30)
    return parser.parse_args(argv)


def phone_model(name, args):
    """The random-init model of `name` with batch statistics (LGC masks condensed), logits of spread LOGIT_SPREAD.

    export() deploys an LGC model converted (mobilenets.deploy.tuning) and an IGCV3 model without shuffles.
    """
    import numpy as np
    import tf_keras as keras

    from mobilenets import build_model
    from mobilenets.models.condensation import condense
    from mobilenets.models.layers import leaf_layers
    from mobilenets.training.precise_bn import recompute_batch_norm_statistics

    keras.utils.set_random_seed(0)
    shape = (args.input_size, args.input_size, 3)
    model = build_model(name, num_classes=10, input_shape=shape, width_multiplier=args.width_multiplier,
                        config=args.config)
    while condense(model):
        pass
    images = np.random.default_rng(1).uniform(0, 255, (16, *shape)).astype("float32")
    recompute_batch_norm_statistics(model, images)
    classifier = [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.Dense)][-1]
    spread = float(np.std(model(images, training=False)))
    classifier.kernel.assign(classifier.kernel * (LOGIT_SPREAD / spread))
    classifier.bias.assign(classifier.bias * (LOGIT_SPREAD / spread))
    return model


def main(argv=None):
    args = parse_args(argv)
    from mobilenets import list_models
    from mobilenets.deploy.export import export

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models or list_models():
            model = phone_model(name, args)
            for mode in args.modes:
                start = time.time()
                try:
                    report = export(model, os.path.join(directory, f"{name}_{mode}.tflite"), quantize=mode,
                                    representative_data="synthetic", calibration_images=32, parity_images=32,
                                    qat_steps=args.qat_steps, qat_batch_size=16, threads=args.threads,
                                    latency_runs=args.latency_runs)
                except Exception as error:  # a benchmark reports every failure and goes on
                    rows.append((name, mode, f"FAILED: {' '.join(str(error).split())[:120]}", "", "", ""))
                    print(*rows[-1], flush=True)
                    continue
                check = report.parity
                if mode in ("none", "float16"):
                    scale = check.max_abs_logit if mode == "none" else check.logit_range
                    parity = f"{check.max_abs_diff:.2g} / {scale:.2g}"
                else:
                    parity = f"{check.top1_agreement:.0%} agree, r={check.logit_correlation:.3f}"
                left = ", ".join(f"{op} x{n}" for op, n in report.undelegated.items()) or "-"
                rows.append((name, mode, parity, f"{report.size_bytes / 2**20:.2f}", f"{report.latency_ms:.2f}", left))
                print(*rows[-1], f"({time.time() - start:.0f}s)", flush=True)
    print(f"\n{args.config} config, {args.input_size}x{args.input_size}, width {args.width_multiplier}, "
          f"{args.threads} thread(s), LiteRT + XNNPACK")
    print(f"{'model':<32} {'mode':<8} {'parity':<26} {'MB':>6} {'ms':>7}  not in XNNPACK")
    for name, mode, parity, size, latency, left in rows:
        print(f"{name:<32} {mode:<8} {parity:<26} {size:>6} {latency:>7}  {left}")
    return 1 if any(row[2].startswith("FAILED") for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
