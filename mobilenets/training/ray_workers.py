"""Training on N Ray workers: `mobilenets-train ... --workers N [--ray-address ADDR]` (issue 34).

Ray only launches processes here; the training is the trainer's own run.strategy=multi_worker
(distribute.py, trainer.py). The driver (the train command) starts N Ray actors, asks each for
its node's address and a free port, writes every worker's TF_CONFIG ({"cluster": {"worker":
[ip:port, ...]}, "task": {"type": "worker", "index": i}}) and calls `train(config)` in each.
Worker 0 is the chief: it holds the run directory's lock and writes its checkpoints, logs and
config; the others checkpoint into private temporary directories (distribute.writable_dir).
schedule.batch_size stays the global batch; tf.data auto-sharding gives each worker its part.

Without --ray-address a Ray instance is started on this machine with every address on the
loopback 127.0.0.1 (Ray's own and TF_CONFIG's) and Ray's usage statistics off; with it, the
driver joins that cluster (`ray start --head` on one machine, `ray start --address` on the
others) and TF_CONFIG holds each worker's node address.

Faults: a worker that dies (killed, out of memory, its machine lost) or fails with an error that
is not the user's stops the whole group; N new workers start and the trainer resumes from the
run directory's last checkpoint, at most `max_failures` times (FailureConfig's max_failures in
Ray Train's terms). A user error (bad config, a run directory in use) stops at once with its
one line. Ctrl-C (KeyboardInterrupt in the driver) kills every worker. A worker that cannot see
the data directory fails before training with one line naming the worker and the path.

Nothing here imports TensorFlow in the driver; Ray is imported only when called (it is the
optional extra `pip install "mobilenets[ray]"`).
"""

import dataclasses
import fcntl
import json
import logging
import os
import socket
import sys
import time
from typing import Optional

from mobilenets.errors import ConfigError, MobilenetsError, first_line
from mobilenets.quiet import held_stderr

INSTALL = 'pip install "mobilenets[ray]"'
MAX_FAILURES = 3  # restarts of the whole worker group after a worker died
START_TIMEOUT = 600  # seconds for the N workers to be placed and report their address
LOOPBACK = "127.0.0.1"


@dataclasses.dataclass
class RayTrainingResult:
    """What the train command reports of a run on Ray (trainer.TrainingResult without the network,
    which stays in the chief's process)."""
    run_dir: str
    epochs_done: int
    history: list
    best_top1: Optional[float]
    diverged: Optional[str]
    num_classes: int = 0
    validation_examples: Optional[int] = None
    restarts: int = 0
    network: None = None

    def last(self, key):
        value = self.history[-1].get(key) if self.history else None
        return None if value is None else float(value)


class WorkerFailed(Exception):
    """A worker died or failed with an error that is not a MobilenetsError: the group restarts."""


def import_ray(local):
    """The ray module; ConfigError with the install command when it is missing. Starting Ray on
    this machine (`local`): its node address is the loopback and it sends no usage statistics (both
    read from the environment when Ray is first imported, and inherited by its processes)."""
    if local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # node address 127.0.0.1, not the NIC's
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no colour codes in the workers' prefixes in a log file
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--workers needs Ray, which is not installed: {INSTALL}") from None
    return ray


def tf_configs(addresses):
    """The TF_CONFIG of each worker, given the 'host:port' of every worker (index 0 is the chief)."""
    return [{"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
            for index in range(len(addresses))]


def unseen_data_message(index, host, path):
    return (f"worker {index} (on {host}) cannot see the data directory {path}: it must be visible at the same "
            f"path to every worker (a shared filesystem, or a copy on each machine)")


class Worker:
    """One training process (a Ray actor). Created fresh for every attempt: TensorFlow's collective
    runtime is set up once per process."""

    def __init__(self, index, threads, cwd, local):
        self.index, self.threads, self.local = index, threads, local
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)  # relative --data-dir / --run-dir mean what they mean to the driver
        try:
            sys.stdout.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass

    def where(self, data_dir):
        """This worker's address for TF_CONFIG (a free port on its node) and whether it sees data_dir."""
        import ray

        host = LOOPBACK if self.local else ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((LOOPBACK if self.local else "", 0))
            port = s.getsockname()[1]
        visible = data_dir is None or os.path.exists(data_dir)
        return {"host": host, "port": port, "hostname": socket.gethostname(), "pid": os.getpid(),
                "visible": visible}

    def train(self, config_dict, tf_config, options, wait_for_lock):
        os.environ["TF_CONFIG"] = json.dumps(tf_config)
        with held_stderr():  # TensorFlow's start-up lines (oneDNN, the CUDA probe), as the commands do
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(2, self.threads))
            tf.config.list_physical_devices()
            from hparams import Config
            from mobilenets.training.rundir import resolve_run_dir
            from mobilenets.training.trainer import train

        config = resolve_run_dir(Config.from_dict(config_dict))  # every worker finds the same directory
        chief = self.index == 0
        if chief and wait_for_lock:
            wait_until_unlocked(config.run.run_dir, wait_for_lock)
        log = (lambda *args: print(*args, flush=True)) if chief else (lambda *args: None)
        try:
            result = train(config, log=log, **options)
        except MobilenetsError as error:
            return {"error": str(error), "type": type(error).__name__}
        if not chief:
            return {}
        best, history = result.best_top1, [{k: float(v) for k, v in epoch.items()} for epoch in result.history]
        return {"run_dir": result.run_dir, "epochs_done": result.epochs_done, "history": history,
                "best_top1": best, "diverged": result.diverged, "num_classes": result.num_classes,
                "validation_examples": result.validation_examples}


def wait_until_unlocked(run_dir, seconds):
    """Waits (at most `seconds`) until no process holds RUN_DIR/run.lock: after a restart the killed
    chief's process may take a moment to go, and with it its lock (lock.py)."""
    path = os.path.join(run_dir, "run.lock")
    deadline = time.monotonic() + seconds
    while os.path.exists(path) and time.monotonic() < deadline:
        with open(path, "a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                time.sleep(0.2)
                continue
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return


def prepare(config, workers):
    """`config` with run.strategy=multi_worker and, when it names one, an absolute run directory (the
    default one, runs/<model>-<dataset>-<hash>, each worker resolves in the driver's working
    directory; the driver does not import TensorFlow); ConfigError for settings --workers cannot run."""
    from hparams import apply_overrides

    if workers is None:
        raise ConfigError("--ray-address needs --workers N")
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more; got {workers}")
    if config.run.strategy not in ("default", "multi_worker"):
        raise ConfigError(f"--workers trains with run.strategy=multi_worker; drop run.strategy={config.run.strategy}")
    changes = {"run.strategy": "multi_worker"}  # not part of the run directory's hash (rundir.RESUMABLE_CHANGES)
    if config.run.run_dir is not None:
        changes["run.run_dir"] = os.path.abspath(config.run.run_dir)
    return apply_overrides(config, changes)


def train_on_ray(config, workers, address=None, *, sync_batchnorm=False, verbose="auto", run_eagerly=False,
                 max_failures=MAX_FAILURES, threads=None, log=print):
    """Trains `config` on `workers` Ray workers (MultiWorkerMirroredStrategy); returns a
    RayTrainingResult. address: a running Ray cluster ('auto', 'HOST:6379'); None starts Ray on
    this machine, on the loopback. threads: TensorFlow threads per worker (default: the CPUs
    Ray gives it)."""
    local = address is None
    if workers is None and address is None:
        raise ConfigError("--workers N is missing")
    ray = import_ray(local)
    config = prepare(config, workers)
    started = not ray.is_initialized()
    if started:
        options = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=True)
        if local:
            options.update(num_cpus=max(workers, os.cpu_count() or 1), _node_ip_address=LOOPBACK)
        else:
            options.update(address=address)
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ConfigError(f"cannot connect to the Ray cluster at {address} ({first_line(error)}); start it with "
                              f"`ray start --head` or check --ray-address") from None
    try:
        return Launcher(ray, config, workers, local, dict(sync_batchnorm=sync_batchnorm, run_eagerly=run_eagerly,
                        verbose=2 if verbose == "auto" else verbose), max_failures, threads, log).run()
    finally:
        if started:
            ray.shutdown()


class Launcher:
    """Starts the worker group, restarts it after a fault, stops it on Ctrl-C or an error."""

    def __init__(self, ray, config, workers, local, train_options, max_failures, threads, log):
        self.ray, self.config, self.workers, self.local = ray, config, workers, local
        self.train_options, self.max_failures, self.log = train_options, max_failures, log
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        self.cpus = max(1, cpus // workers)  # one worker per machine when each has its share of the CPUs
        self.gpus = gpus // workers if gpus >= workers else 0
        self.threads = threads or self.cpus
        self.actors = []

    def run(self):
        failures = 0
        while True:
            try:
                result = self.attempt(failures)
                result.restarts = failures
                return result
            except WorkerFailed as fault:
                failures += 1
                if failures > self.max_failures:
                    raise ConfigError(f"{fault}; gave up after {self.max_failures} restart"
                                      f"{'' if self.max_failures == 1 else 's'}") from None
                self.log(f"{fault}; restarting the {self.workers} workers from the last checkpoint "
                         f"(restart {failures} of at most {self.max_failures})")
            finally:
                self.stop()

    def start(self):
        remote = self.ray.remote(Worker).options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0,
                                                 scheduling_strategy="SPREAD")
        self.actors = [remote.remote(index, self.threads, os.getcwd(), self.local) for index in range(self.workers)]

    def stop(self):
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self.actors = []

    def attempt(self, failures):
        self.start()
        data_dir = self.config.data.data_dir
        try:
            places = self.ray.get([a.where.remote(data_dir) for a in self.actors], timeout=START_TIMEOUT)
        except self.ray.exceptions.GetTimeoutError:
            raise ConfigError(f"the Ray cluster did not start {self.workers} workers of {self.cpus} CPU(s)"
                              f"{f' and {self.gpus} GPU(s)' if self.gpus else ''} each within {START_TIMEOUT} s; "
                              f"it has {self.ray.cluster_resources()}") from None
        except self.ray.exceptions.RayActorError as error:
            raise WorkerFailed(f"a worker died while starting ({first_line(error)})") from None
        for index, place in enumerate(places):
            if not place["visible"]:
                raise ConfigError(unseen_data_message(index, f"{place['hostname']}, {place['host']}", data_dir))
        addresses = [f"{place['host']}:{place['port']}" for place in places]
        self.log(f"{self.workers} Ray worker(s), TF_CONFIG cluster {', '.join(addresses)} "
                 f"(pids {', '.join(str(place['pid']) for place in places)}); worker 0 writes the run directory")
        config = self.config.to_dict()
        pending = {actor.train.remote(config, tf_config, self.train_options, 60 if failures else 0): index
                   for index, (actor, tf_config) in enumerate(zip(self.actors, tf_configs(addresses)))}
        chief = None
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready[0])
            try:
                outcome = self.ray.get(ready[0])
            except self.ray.exceptions.RayActorError as error:
                raise WorkerFailed(f"worker {index} (pid {places[index]['pid']}) died ({first_line(error)})") from None
            except self.ray.exceptions.RayTaskError as error:
                cause = getattr(error, "cause", None) or error
                raise WorkerFailed(f"worker {index} failed: {type(cause).__name__}: {first_line(cause)}") from None
            if "error" in outcome:  # the user's to fix: no restart
                raise ConfigError(outcome["error"] if index == 0 else f"worker {index}: {outcome['error']}")
            if index == 0:
                chief = outcome
        return RayTrainingResult(**chief)
