"""The suite's environment, and the order the two pytest-xdist workers take the files in.

Helpers live in modules beside the tests, never in test files: tests/support.py (small models, pixels,
runs, exports), tests/userdata.py (data shaped as users have it, the CLI in a subprocess),
tests/dataformats.py (every on-disk dataset format), tests/models_under_test.py (the models swept).
"""

import collections
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No test reaches past this machine: the download probe answers "offline" at once (tfds_source.can_reach).
os.environ["MOBILENETS_OFFLINE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the two cores: one TensorFlow op thread each rather than two each contending.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

# Seconds a file takes on one of two pytest-xdist workers (`python -m pytest --file-seconds` prints
# them; these are of the whole suite on a quiet 2-core machine, 789 s). pytest.ini keeps a file on one
# worker (its module fixtures and cached models are made once) and xdist hands the next file to
# whichever worker is free: longest first, the two end together. A file not listed yet goes first,
# as a long file last would leave one worker alone.
FILE_SECONDS = {  # measured on a quiet 2-core machine (python -m pytest -q --file-seconds), 2026-12-08
    "test_train.py": 270, "test_journeys.py": 267, "test_ray.py": 179, "test_models.py": 178,
    "test_deploy.py": 142, "test_export.py": 88, "test_run_data.py": 86, "test_finetune.py": 77,
    "test_pareto.py": 73, "test_cli_traps.py": 72, "test_mobilenetv4.py": 62, "test_backbones.py": 60,
    "test_faults.py": 57, "test_ema.py": 56, "test_earlier_main.py": 47, "test_standin_backbone.py": 41,
    "test_first_use.py": 34, "test_predict.py": 33, "test_augmentations.py": 30, "test_timm_weights.py": 27,
    "test_package.py": 26, "test_evaluate.py": 25, "test_user_data_dirs.py": 21, "test_convert.py": 21,
    "test_adamw_presets.py": 20, "test_learning.py": 15, "test_mediapipe.py": 13, "test_builder_properties.py": 11,
    "test_stochastic_depth.py": 10, "test_data_pipelines.py": 8, "test_plot.py": 5, "test_hparams.py": 3,
    "test_layers.py": 1, "test_io.py": 0,
}


def pytest_addoption(parser):
    parser.addoption("--file-seconds", action="store_true",
                     help="print the seconds each test file took (the figures conftest.FILE_SECONDS holds)")


def pytest_collection_modifyitems(items):
    def seconds(item):
        return FILE_SECONDS.get(item.path.name, float("inf"))

    items.sort(key=seconds, reverse=True)  # stable: a file's tests keep their order


_file_seconds = collections.Counter()


def pytest_runtest_logreport(report):
    _file_seconds[report.nodeid.split("::")[0]] += report.duration  # setup, call and teardown


def pytest_terminal_summary(terminalreporter, config):
    if config.getoption("file_seconds"):
        terminalreporter.write_sep("=", "seconds per test file")
        for path, total in _file_seconds.most_common():
            terminalreporter.write_line(f"{total:8.1f}  {path}")
