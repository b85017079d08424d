"""Run plumbing: work directories, logging, run records, devices, seeds and DDP.

A run writes into ``<work_dir>/<name>/``; :func:`check_run_name` keeps that folder
strictly inside ``work_dir`` (``name`` may nest runs, ``ntu60/xsub/linear``, but no
part of it may be empty, ``.`` or ``..``).  :func:`prepare_work_dir` creates it,
never deletes anything, and refuses to reuse a folder that holds a finished
run (unless ``overwrite``) or an unfinished one (unless ``resume`` or
``overwrite``).  ``overwrite`` moves the earlier run's files into
``<name>/overwritten/<UTC time>/``, so the new run starts from an empty folder
(a fresh ``metrics.jsonl``, no stale epoch checkpoints) and nothing is lost; it
refuses a folder with other runs inside it, which it would move along.
While a run is going it holds a lock on ``<name>/.run.lock``: a second process
started on the same folder (a repeated command, a ``--resume`` or ``--overwrite``
of a run that is still going) is refused instead of mixing its checkpoints and logs.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import logging
import os
import platform
import random
import signal
import threading
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

from feeder.io import OVERWRITTEN_DIR, move_to_overwritten, save_json_atomic, save_text_atomic

__all__ = [
    "FINISHED_MARKER", "OVERWRITTEN_DIR", "RUN_RECORD", "RunDirError", "Terminated", "check_run_name",
    "prepare_work_dir", "release_work_dir", "LOCK_FILE", "sigterm_raises",
    "setup_logging", "teardown_logging",
    "write_run_record", "execution_info", "resolve_device", "seed_everything", "worker_seed", "rng_state",
    "set_rng_state", "seed_per_process", "is_main_process", "init_distributed", "world_size", "rank",
    "mean_over_processes", "gather_objects",
]

logger = logging.getLogger(__name__)

FINISHED_MARKER = "FINISHED"
RUN_RECORD = "run_info.json"  # written by every run when it starts (write_run_record)
REPO_ROOT = Path(__file__).resolve().parents[1]
_RECORDED_PACKAGES = ("torch", "torchvision", "numpy", "pyyaml", "scipy", "scikit-learn",
                      "open_clip_torch", "ultralytics", "transformers", "einops")


class RunDirError(RuntimeError):
    """The work directory cannot be used as asked (finished run, unfinished run, ...)."""


def check_run_name(name: object) -> str:
    """Return ``name`` when it names a folder strictly inside ``work_dir``; else raise :class:`ConfigError`.

    A name is a relative path of one or more parts separated by ``/`` (nested runs, as the default names
    from config paths are); an empty name or part, ``.``, ``..``, an absolute path or a backslash is refused:
    such a run dir would be ``work_dir`` itself or lie outside it, and ``overwrite`` would move other runs.
    """
    from processor.config import ConfigError

    if not isinstance(name, str):
        raise ConfigError(f"name must be a string (the run's folder below work_dir), got {name!r}")
    parts = name.split("/")
    bad = [p for p in parts if p.strip() in ("", ".", "..")]
    if name.startswith("/") or "\\" in name or bad:
        raise ConfigError(f"name={name!r} is not a run folder below work_dir: use a relative path of non-empty "
                          f"parts separated by '/' (e.g. name=ntu60/xsub/linear), without '.', '..', a leading "
                          f"'/' or a backslash")
    return name


def _check_work_dir(path: Path, resume: bool, overwrite: bool, checkpoint_name: str) -> None:
    """Raise :class:`RunDirError` when the folder cannot be used as asked (reads only)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"work dir {path} exists and is not a folder")
    if resume and overwrite:
        raise RunDirError(f"{path}: resume and overwrite exclude each other (continue the run, or start again)")
    finished = (path / FINISHED_MARKER).exists()
    has_checkpoint = (path / checkpoint_name).exists()
    if finished and not overwrite:
        raise RunDirError(f"{path} holds a finished run; set overwrite=true (or --overwrite) to run again "
                          f"into it, or choose another name=")
    if has_checkpoint and not finished and not (resume or overwrite):
        raise RunDirError(f"{path} holds an unfinished run ({checkpoint_name}); pass --resume to continue it "
                          f"or --overwrite to start again")
    if resume and not has_checkpoint:
        raise RunDirError(f"--resume: {path} holds no {checkpoint_name} to continue (a misspelt name=? drop "
                          f"--resume to start a new run there)")


def prepare_work_dir(path: Path, resume: bool, overwrite: bool,
                     checkpoint_name: str = "latest.pt") -> Optional[Path]:
    """Create or check the run folder ``path`` and lock it for this process (:func:`release_work_dir`
    unlocks it); returns where ``overwrite`` moved an earlier run's files (``path/overwritten/<UTC time>``),
    or None when nothing was moved.  A folder locked by a run that is still going is refused."""
    path = Path(path)
    _refuse_if_locked(path)                      # before the checks: a running run is no unfinished one
    _check_work_dir(path, resume, overwrite, checkpoint_name)
    path.mkdir(parents=True, exist_ok=True)
    _lock_work_dir(path)
    try:
        _check_work_dir(path, resume, overwrite, checkpoint_name)    # again, under the lock
        moved_to = None
        earlier = sorted(p for p in path.iterdir() if p.name not in (OVERWRITTEN_DIR, LOCK_FILE))
        nested = ([p for p in earlier if p.is_dir() and next(p.rglob(RUN_RECORD), None) is not None]
                  if overwrite else [])
        if nested:
            raise RunDirError(f"{path} holds other runs ({', '.join(p.name for p in nested)}): overwrite would "
                              f"move them into {path / OVERWRITTEN_DIR}; choose a name= of a folder of its own")
        if overwrite and earlier:
            moved_to = move_to_overwritten(path, earlier)
    except BaseException:
        release_work_dir(path)
        raise
    return moved_to


LOCK_FILE = ".run.lock"   # in the run folder: held (flock) by the process running there; kept afterwards
_LOCKS: Dict[Path, Any] = {}


def _in_use(path: Path, holder: str) -> RunDirError:
    return RunDirError(f"{path} is in use by a run that is still going ({holder or 'another process'}): two runs "
                       f"in one folder would mix their checkpoints and logs; wait for it to end, or choose another "
                       f"name=")


def _refuse_if_locked(path: Path) -> None:
    """Raise when another process holds ``path``'s lock (creates nothing)."""
    lock = path / LOCK_FILE
    if fcntl is None or not lock.is_file() or path.resolve() in _LOCKS:
        return
    with open(lock, "r", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(path, " ".join(handle.read().split())) from None
        except OSError:                    # a file system without locks: _lock_work_dir says so
            pass


def _lock_work_dir(path: Path) -> None:
    """Hold an exclusive lock on ``path/.run.lock`` until :func:`release_work_dir` (or the process ends:
    the system drops the lock of a killed process, so no stale lock remains)."""
    if fcntl is None:                      # not POSIX: no lock
        return
    key = path.resolve()
    if key in _LOCKS:
        return
    handle = open(path / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = " ".join(handle.read().split())
        handle.close()
        raise _in_use(path, holder) from None
    except OSError as err:                 # e.g. ENOLCK / ENOSYS on some NFS or Lustre mounts: run unguarded
        handle.close()
        logger.warning("%s: cannot lock %s on this file system (%s); a second run started in this folder "
                       "would not be refused", path, LOCK_FILE, err)
        return
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{_dt.datetime.now().isoformat(timespec='seconds')}\n")
    handle.flush()
    _LOCKS[key] = handle


def release_work_dir(path: Path) -> None:
    """Release :func:`prepare_work_dir`'s lock on ``path`` (nothing when this process holds none)."""
    handle = _LOCKS.pop(Path(path).resolve(), None)
    if handle is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


_HANDLERS: list = []


class _TqdmHandler(logging.StreamHandler):
    """Console handler that keeps tqdm bars intact."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - fall back to plain stream output
            super().emit(record)


def setup_logging(log_file: Optional[Path] = None, level: int = logging.INFO, console: bool = True) -> None:
    """Console (tqdm-safe) and ``log.txt`` handlers on the root logger."""
    teardown_logging()
    root = logging.getLogger()
    root.setLevel(level)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    if console:
        handler = _TqdmHandler()
        handler.setFormatter(fmt)
        root.addHandler(handler)
        _HANDLERS.append(handler)
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(fmt)
        root.addHandler(handler)
        _HANDLERS.append(handler)


class Terminated(SystemExit):
    """The process received SIGTERM (a cluster scheduler's stop, ``kill``): raised in the main thread so the run
    ends like after Ctrl-C, its log saying how; exit status 128 + 15, as the default handler's."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"signal {signal.Signals(self.signum).name}"


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def log_failure_to_file(message: str) -> None:
    """Write ``message`` and the exception being handled to the ``log.txt`` handlers only (the
    console shows the traceback once, when the exception leaves the process)."""
    record = logging.getLogger(__name__).makeRecord(__name__, logging.ERROR, __file__, 0, message, (),
                                                    sys.exc_info())
    for handler in _HANDLERS:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def teardown_logging() -> None:
    root = logging.getLogger()
    while _HANDLERS:
        handler = _HANDLERS.pop()
        root.removeHandler(handler)
        handler.close()


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _versions() -> Dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _RECORDED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def execution_info(device: torch.device) -> Dict[str, Any]:
    """What runs the computation and changes its numbers beyond the config: the device ``device: auto`` chose
    (and its GPU), the torch CPU threads (``num_threads: 0`` takes the machine's cores; CPU results differ in
    their last bits between thread counts) and the number of processes."""
    info: Dict[str, Any] = {"device": str(device), "torch_threads": torch.get_num_threads(),
                            "processes": world_size()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_run_record(work_dir: Path, config_yaml: str, argv: Sequence[str], resumed: bool = False,
                     execution: Optional[Dict[str, Any]] = None) -> None:
    """Save the resolved config, the command line, the git commit, library versions and ``execution``
    (:func:`execution_info`).

    A resumed run keeps its first record: ``run_info.json`` gains an entry in ``resumes`` (command,
    time, commit, host), and a ``config.yaml`` that the resume changes is first copied to
    ``config.before_resume_<k>.yaml``; ``config.yaml`` is always the config the run continues with.
    """
    status = _git("status", "--porcelain")
    record = {
        "command": [sys.executable, *argv],
        "cwd": os.getcwd(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "host": socket.gethostname(),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    if execution is not None:
        record["execution"] = execution
    info_path, config_path = work_dir / RUN_RECORD, work_dir / "config.yaml"
    if resumed and info_path.is_file():
        import json

        info = json.loads(info_path.read_text(encoding="utf-8"))
        info.setdefault("resumes", []).append(record)
        if config_path.is_file() and config_path.read_text(encoding="utf-8") != config_yaml:
            save_text_atomic(work_dir / f"config.before_resume_{len(info['resumes'])}.yaml",
                             config_path.read_text(encoding="utf-8"))
    else:
        info = {**record, "versions": _versions(), "cuda": torch.version.cuda if torch.cuda.is_available() else None}
    save_text_atomic(config_path, config_yaml)
    save_json_atomic(info_path, info)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda`` without a GPU is an error.  Under torchrun,
    ``cuda`` is each process's ``LOCAL_RANK`` GPU (a fixed ``cuda:N`` would put every process on one).  In one
    process ``cuda:N`` also becomes the current CUDA device."""
    from processor.config import ConfigError

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} was requested but torch sees no CUDA device; use device=auto or cpu")
    if name.startswith("cuda") and world_size() > 1:
        if name != "cuda":
            raise ConfigError(f"device={name} under torchrun would put every process on one GPU; use device=cuda "
                              f"(each process takes its LOCAL_RANK GPU)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={name} but torch sees {torch.cuda.device_count()} CUDA device(s) "
                              f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        # the current device: the DataLoader's pin-memory thread (and any allocation without a device) would
        # otherwise open a context on GPU 0, taking its memory on a shared machine
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def seed_per_process(seed: int) -> None:
    """Give each DDP process a torch generator of its own (``seed`` and the rank); nothing in one process.

    Called once the model is built (its initialisation and every choice of samples stay those of
    ``seed`` on every process), so dropout draws independent masks on each process, as one process
    with the same total batch does, instead of repeating rank 0's masks for the same batch positions.
    """
    if world_size() > 1:
        torch.manual_seed(int(np.random.SeedSequence([int(seed), rank()]).generate_state(1)[0]))


def worker_seed(seed: int, epoch: int, worker_id: int) -> int:
    """A 32-bit seed derived from (seed, epoch, worker id)."""
    return int(np.random.SeedSequence([seed, epoch, worker_id]).generate_state(1)[0])


class WorkerInit:
    """DataLoader ``worker_init_fn`` seeding python, numpy and torch per (seed, epoch, worker)."""

    def __init__(self, seed: int, epoch: int) -> None:
        self.seed, self.epoch = seed, epoch

    def __call__(self, worker_id: int) -> None:
        s = worker_seed(self.seed, self.epoch, worker_id)
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)


def rng_state() -> Dict[str, Any]:
    """Python, numpy and torch generator states, as tensors and plain Python values only, so that a
    checkpoint holding them loads with ``torch.load(weights_only=True)`` (no pickled code runs)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s output.  The torch states must be CPU byte tensors: a checkpoint
    loaded with ``map_location="cuda"`` brings them onto the GPU, so they are moved back first."""
    random.setstate(tuple(s if not isinstance(s, list) else tuple(s) for s in state["python"]))
    kind, keys, *rest = state["numpy"]
    if isinstance(keys, torch.Tensor):  # rng_state's tensor form (older checkpoints hold the numpy array)
        keys = keys.cpu().numpy().astype(np.uint32)
    np.random.set_state((kind, keys, *rest))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        # one state per GPU the saving process saw; torch.cuda.set_rng_state_all fails (IndexError) on a
        # machine that shows fewer, so only the visible GPUs' states are restored
        saved, visible = len(state["cuda"]), torch.cuda.device_count()
        if saved != visible:
            logger.warning("the checkpoint holds the CUDA generator states of %d GPU(s), this process has %d "
                           "visible: those of GPUs 0..%d are restored (if training ran on another GPU index, its "
                           "dropout masks after the resume differ from an uninterrupted run's)", saved, visible,
                           min(saved, visible) - 1)
        for index, cuda_state in enumerate(state["cuda"][:visible]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


# ----------------------------------------------------------------- distributed
def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def is_main_process() -> bool:
    return rank() == 0


def gather_objects(obj: Any) -> list:
    """Every DDP process's ``obj`` in rank order (``[obj]`` in one process); all processes must call it."""
    if world_size() <= 1 or not torch.distributed.is_initialized():
        return [obj]
    out: list = [None] * world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def mean_over_processes(values: Dict[str, float]) -> Dict[str, float]:
    """Average scalar metrics over DDP processes (identity in a single process)."""
    if world_size() <= 1 or not torch.distributed.is_initialized() or not values:
        return values
    keys = sorted(values)
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    tensor /= world_size()
    return {k: float(v) for k, v in zip(keys, tensor.tolist())}


def init_distributed(device_name: str) -> bool:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return False
    if torch.distributed.is_initialized():
        return True
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.distributed.init_process_group(backend=backend)
    logger.info("distributed: rank %d of %d (%s)", rank(), world_size(), backend)
    return True
