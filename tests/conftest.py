import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No test reaches past this machine: the download probe answers "offline" at once (tfds_source.can_reach).
os.environ["MOBILENETS_OFFLINE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the two cores: one TensorFlow op thread each rather than two each contending.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

# The longest files first, so that the two workers (pytest.ini: one file per worker) end together.
LONGEST_FIRST = ("test_train.py", "test_deploy.py", "test_journeys.py", "test_finetune.py", "test_models.py",
                 "test_export.py", "test_mobilenetv4.py", "test_cli_traps.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
