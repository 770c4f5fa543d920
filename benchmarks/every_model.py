"""The per-model sweeps over every registered model (the tests take one model of each block kind:
tests/models_under_test.py): build, train a step from the command line, save and reload, export
float32 matching Keras, and XNNPACK running every op in int8; every backbone's shapes, and its
float32 and int8 files. About 20 minutes on 2 cores.

    python benchmarks/every_model.py [pytest options, e.g. -x or -k mobilenetv4]
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEPS = ("test_every_model_trains_from_the_command_line_and_its_loss_falls or test_every_model_trains_saves_and_"
          "reloads or test_every_model_exports_float32_matching_keras_on_raw_pixels or test_xnnpack_runs_every_op_"
          "of_every_deployed_model_in_int8 or test_backbone_shapes_names_and_channels or test_backbones_export_with_"
          "every_op_in_xnnpack")
FILES = ("tests/test_train.py", "tests/test_models.py", "tests/test_export.py", "tests/test_deploy.py",
         "tests/test_backbones.py")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = [sys.executable, "-m", "pytest", "-q", *FILES, "-k", SWEEPS, *argv]
    return subprocess.call(command, cwd=ROOT, env={**os.environ, "MOBILENETS_EVERY_MODEL": "1"})


if __name__ == "__main__":
    sys.exit(main())
