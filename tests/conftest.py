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

# Seconds a file takes in one process of one TensorFlow thread (`python -m pytest --file-seconds`
# prints them). pytest.ini keeps a file on one worker (its module fixtures and cached models are
# made once) and xdist hands the next file to whichever worker is free: longest first, the two
# end together. A file not listed yet goes first, as a long file last would leave one worker alone.
FILE_SECONDS = {
    "test_deploy.py": 180, "test_train.py": 170, "test_journeys.py": 150, "test_mobilenetv4.py": 140,
    "test_export.py": 110, "test_finetune.py": 100, "test_models.py": 90, "test_cli_traps.py": 80,
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
