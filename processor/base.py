"""The processor lifecycle shared by every ``main.py`` command.

:class:`Processor` owns what every run has: the resolved config, the work
directory ``<work_dir>/<name>/``, logging to the console and ``log.txt``, the
run record (config, command line, git commit, versions) and the ``FINISHED``
marker with ``results.json``.  Subclasses implement :meth:`Processor.execute`.

:class:`TrainProcessor` adds the epoch loop: build data, model, optimizer and
scheduler; train epochs with tqdm, meters, TensorBoard and ``metrics.jsonl``;
evaluate; save atomic checkpoints; resume exactly (also in the middle of an
epoch).  Subclasses override only what differs (``build_data``,
``build_model``, ``train_step``, ``evaluate`` and a few hooks).
"""
from __future__ import annotations

import json
import math
import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from feeder.io import save_json_atomic, save_text_atomic
from net.sync_bn import convert_sync_batchnorm
from processor import cpu_allocator, runtime
from processor.checkpoint import LATEST, load_checkpoint, save_checkpoint
from processor.config import (AttrDict, ConfigError, UnknownKeyError, dump_yaml, flatten, load_with_bases,
                              resolve_config)
from processor.meters import MeterGroup
from processor.sampler import ResumableSampler
from processor.schedule import SCHEDULERS, PlateauRule, build_scheduler, warmup_factor

__all__ = ["Processor", "TrainProcessor", "count_parameters"]

logger = logging.getLogger(__name__)
REPO_ROOT = runtime.REPO_ROOT
CONFIG_ROOT = REPO_ROOT / "config"


def is_accuracy_key(key: str) -> bool:
    """A logged accuracy (``train/acc``, ``train/acc_domain``, ``eval/holdout_top1``, ...): every one is in %."""
    name = key.rsplit("/", 1)[-1]
    return name == "acc" or name.startswith("acc_") or name.endswith(("_top1", "_top5")) or name in ("top1", "top5")


def format_epoch_record(record: Dict[str, Any]) -> str:
    """The epoch log line's fields: ``lr 0.01  train/loss 1.234  train/acc_domain 3.91 %`` (accuracies in %)."""
    return "  ".join(f"{k} {v:.2f} %" if is_accuracy_key(k) else f"{k} {v:.4g}"
                     for k, v in record.items() if k != "epoch")


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# Keys that say how a run is executed, not what it computes: a resume may change them silently.
OPTIMIZERS = ("sgd", "adam")                      # the optim.name values build_optimizer knows
RUN_CONTROL_KEYS = frozenset({"resume", "overwrite", "work_dir", "device", "num_workers", "num_threads",
                              "progress_bar", "log_interval", "tensorboard", "save_interval", "save_every_steps"})


def changed_settings(saved: Dict[str, Any], current: Dict[str, Any]) -> list:
    """``["key: old -> new", ...]`` for every setting other than :data:`RUN_CONTROL_KEYS` that differs."""
    old, new = flatten(saved), flatten(current)
    return [f"{key}: {old.get(key, '(absent)')} -> {new.get(key, '(absent)')}"
            for key in sorted(set(old) | set(new))
            if key not in RUN_CONTROL_KEYS and old.get(key) != new.get(key)]


class Processor:
    """Base of every processor. Subclasses set ``description`` and implement :meth:`execute`."""

    name: str = "processor"
    description: str = ""
    #: processors that never train a model (fusion, report) say False: ``--summary`` has nothing to show
    has_model: bool = False
    #: a resume writes the run record only once its checkpoint is found to fit (TrainProcessor.try_resume), so
    #: that a refused resume leaves config.yaml and run_info.json as the interrupted run wrote them
    records_resume_when_checked: bool = False

    def __init__(self, cfg: Dict[str, Any], config_path: Optional[Path] = None, argv: Sequence[str] = ()) -> None:
        self.cfg = AttrDict(cfg)
        self.config_path = Path(config_path) if config_path else None
        self.argv = list(argv)
        self.work_dir: Optional[Path] = None
        self.results: Dict[str, Any] = {}

    # ------------------------------------------------------------ construction
    @classmethod
    def defaults_path(cls) -> Path:
        return CONFIG_ROOT / "defaults" / f"{cls.name}.yaml"

    @classmethod
    def from_config(cls, config_path: Optional[Path], overrides: Iterable[str] = (), argv: Sequence[str] = ()):
        try:
            cfg = resolve_config(cls.defaults_path(), config_path, overrides)
        except UnknownKeyError as err:
            others = cls.processors_with_key(err.key)
            if not others:
                raise
            what = "the override" if err.origin == "command line" else "the config"
            raise ConfigError(f"unknown config key {err.key!r} (set in {err.origin}): a key of {', '.join(others)}, "
                              f"not of {cls.name}; is {what} meant for another processor? (python main.py "
                              f"<processor> --config ...){err.close_hint()}") from None
        if cfg.get("name") is None:
            cfg["name"] = cls.default_run_name(config_path)
        return cls(cfg, config_path, argv)

    @classmethod
    def processors_with_key(cls, dotted: str) -> list:
        """The other registered processors whose defaults have the config key ``dotted``."""
        from processor.registry import discover

        found = []
        for name, other in discover().items():
            path = other.defaults_path()
            if other is cls or not path.is_file():
                continue
            node: Any = load_with_bases(path)
            for part in dotted.split("."):
                node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
            if node is not KeyError:
                found.append(name)
        return found

    @classmethod
    def default_run_name(cls, config_path: Optional[Path]) -> str:
        if config_path is None:
            return cls.name
        path = Path(config_path).resolve()
        try:
            return str(path.relative_to(CONFIG_ROOT).with_suffix(""))
        except ValueError:
            return path.stem

    def _choice(self, key: str, allowed: tuple) -> str:
        """The config value of ``key``, which must be one of ``allowed``."""
        value = self.cfg[key]
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value

    # ---------------------------------------------------------------- running
    def check_config(self) -> None:
        """Config mistakes found without reading anything, as ConfigErrors naming the key.  :meth:`run` calls
        this before the run folder is made, so a mistake creates nothing (and an ``--overwrite`` moves no earlier
        run aside).  Subclasses extend it, calling ``super().check_config()`` first."""

    def require_data_root(self) -> None:
        """A processor that reads ``data.root`` refuses a config that leaves it unset."""
        if "root" in self.cfg.get("data", {}) and self.cfg.data.root is None:
            raise ConfigError("data.root is not set: point it at a folder prepared by data_gen/ (e.g. "
                              "data/ntu60/xsub), in the config or as data.root=... on the command line")

    @property
    def run_dir(self) -> Path:
        """``<work_dir>/<name>``; a name that would not make a folder of its own there is a ConfigError."""
        return Path(self.cfg.work_dir) / runtime.check_run_name(self.cfg.name)

    def run(self) -> Dict[str, Any]:
        """Prepare the work dir, log, execute, and mark the run finished."""
        if int(self.cfg.get("num_threads", 0) or 0) > 0:
            torch.set_num_threads(int(self.cfg.num_threads))
        malloc_kept = bool(self.cfg.get("reuse_freed_memory")) and not cpu_allocator.reuse_freed_memory()
        distributed = runtime.init_distributed(self.cfg.get("device", "cpu"))
        runtime.resolve_device(self.cfg.get("device", "cpu"))  # a bad device fails before the work dir is made
        self.check_config()                                      # so do the config's mistakes
        main = runtime.is_main_process()
        self.work_dir = self.run_dir
        resumed = bool(self.cfg.get("resume"))
        moved_to = None
        if main:
            moved_to = runtime.prepare_work_dir(self.work_dir, resume=resumed,
                                                overwrite=bool(self.cfg.get("overwrite")))
        try:
            if distributed:
                torch.distributed.barrier()
            runtime.setup_logging(self.work_dir / "log.txt" if main else None, console=main)
            try:
                with runtime.sigterm_raises():
                    return self._run_logged(main, distributed, resumed, moved_to, malloc_kept)
            except BaseException as err:    # Ctrl-C and SIGTERM included: the run log says how the run ended
                runtime.log_failure_to_file(f"{self.name} stopped by {type(err).__name__}"
                                            + (f": {err}" if str(err) else ""))
                raise
            finally:
                self.close()
                runtime.teardown_logging()
                if distributed and torch.distributed.is_initialized():
                    torch.distributed.destroy_process_group()
        finally:
            runtime.release_work_dir(self.work_dir)   # prepare_work_dir's lock: the folder is free again

    def _run_logged(self, main: bool, distributed: bool, resumed: bool, moved_to, malloc_kept: bool) -> Dict[str, Any]:
        """The body of :meth:`run` once the work dir and the log exist."""
        if not (resumed and self.records_resume_when_checked):
            self.write_run_record(resumed)
        logger.info("%s: work dir %s", self.name, self.work_dir)
        if moved_to is not None:
            logger.info("overwrite: the earlier run's files are kept in %s", moved_to)
        if malloc_kept:
            logger.info("reuse_freed_memory: not glibc, the C library's malloc settings are kept")
        started = time.time()
        self.results = self.execute() or {}
        self.results.setdefault("wall_time_s", round(time.time() - started, 2))
        if main:
            save_json_atomic(self.work_dir / "results.json", self.results)
            (self.work_dir / runtime.FINISHED_MARKER).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        logger.info("%s finished in %.1f s", self.name, self.results["wall_time_s"])
        if distributed:
            torch.distributed.barrier()  # no rank tears the group down while another still talks to it
        return self.results

    def write_run_record(self, resumed: bool) -> None:
        """``config.yaml`` (the resolved config) and ``run_info.json`` in the run dir (main process)."""
        if runtime.is_main_process():
            execution = runtime.execution_info(runtime.resolve_device(self.cfg.get("device", "cpu")))
            logger.info("%s on %s", "resumed" if resumed else "runs",
                        ", ".join(f"{k} {v}" for k, v in execution.items()))
            runtime.write_run_record(self.work_dir, dump_yaml(self.cfg.to_dict()), self.argv, resumed=resumed,
                                     execution=execution)

    def close(self) -> None:
        """Release resources (writers, process groups); safe to call twice."""

    def execute(self) -> Dict[str, Any]:
        raise NotImplementedError

    def summary(self) -> str:
        return f"{self.name}: builds no model"


class TrainProcessor(Processor):
    """A processor with an epoch loop, checkpoints and exact resume."""

    has_model = True
    records_resume_when_checked = True

    def check_config(self) -> None:
        super().check_config()
        self.require_data_root()
        optim_name = self.cfg.get("optim", {}).get("name", OPTIMIZERS[0])
        if optim_name not in OPTIMIZERS:
            raise ConfigError(f"optim.name={optim_name!r}: expected one of {', '.join(OPTIMIZERS)}")
        scheduler_name = self.cfg.get("scheduler", {}).get("name", "none")
        if scheduler_name not in SCHEDULERS:
            raise ConfigError(f"scheduler.name={scheduler_name!r}: expected one of {', '.join(SCHEDULERS)}")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.device = torch.device("cpu")
        self.model: Optional[torch.nn.Module] = None
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.scheduler = None
        self.warmup_steps = 0
        self.train_set: Optional[Dataset] = None
        self.epoch = 0
        self.global_step = 0
        self.stop_requested = False
        self._tb = None
        self._metrics_file: Optional[Path] = None
        self._epoch_meters: Optional[MeterGroup] = None  # the running epoch's meters (saved mid-epoch)
        self.stopped_early = False                          # the plateau rule ended the run (saved)
        self._resumed_meters: Optional[Dict[str, Any]] = None
        self._resume_state: Optional[Dict[str, Any]] = None   # the checkpoint a resume continues (setup only)

    # ------------------------------------------------------------ to override
    def build_data(self) -> None:
        """Set ``self.train_set`` (and whatever evaluation data the processor needs)."""
        raise NotImplementedError

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def train_step(self, batch: Any) -> Dict[str, torch.Tensor]:
        """One step's forward: return a dict with ``loss`` and any scalar tensors to log."""
        raise NotImplementedError

    def evaluate(self, epoch: int) -> Dict[str, float]:
        """Evaluation after an epoch; ``{}`` when the processor has none."""
        return {}

    def monitored_value(self, metrics: Dict[str, float]) -> Optional[float]:
        """The value a ``plateau`` scheduler watches (subclasses with one override this)."""
        return None

    @staticmethod
    def shared_metrics(metrics: Dict[str, float]) -> Dict[str, float]:
        """Rank 0's evaluation metrics on every process (itself in one process): the plateau rule's lr cut and
        stop follow one evaluation.  Each process evaluates on its own; where two disagree (GPU kernels that
        round differently can flip a sample), one process would cut its lr alone, or stop while the other
        waits in its next all-reduce."""
        return runtime.gather_objects(metrics)[0]

    def finalize(self) -> Dict[str, Any]:
        """Results of the finished run (written to ``results.json``)."""
        return {"epochs_run": self.epoch, "global_step": self.global_step}

    def extra_state(self) -> Dict[str, Any]:
        """Processor-specific state saved in checkpoints (e.g. best accuracy)."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        pass

    def resume_fixed_keys(self) -> Sequence[str]:
        """Config keys a resume may not change (they select the training data); others only warn."""
        return ()

    # ---------------------------------------------------------------- helpers
    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def build_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        if o.name == "sgd":
            return torch.optim.SGD(self.trainable_parameters(), lr=o.lr, momentum=o.momentum,
                                   weight_decay=o.weight_decay, nesterov=bool(o.get("nesterov", False)))
        if o.name == "adam":
            return torch.optim.Adam(self.trainable_parameters(), lr=o.lr, weight_decay=o.weight_decay)
        raise ConfigError(f"optim.name={o.name!r}: expected one of {', '.join(OPTIMIZERS)}")

    def make_loader(self, dataset: Dataset, batch_size: int, epoch: int, shuffle: bool,
                    drop_last: bool, start_batch: int = 0, indices: Optional[Sequence[int]] = None,
                    distributed: bool = True) -> DataLoader:
        """A DataLoader whose order depends only on (seed, epoch); workers seeded per (seed, epoch, id)."""
        world = runtime.world_size() if distributed else 1
        rank = runtime.rank() if distributed else 0
        sampler = ResumableSampler(len(dataset), batch_size, seed=self.cfg.seed, shuffle=shuffle,
                                   drop_last=drop_last, rank=rank, world_size=world, indices=indices)
        if sampler.num_batches() == 0:
            raise ValueError(f"{len(sampler.indices)} samples cannot fill one batch of {batch_size}"
                             f"{f' x {world} processes' if world > 1 else ''}; lower the batch size")
        sampler.set_epoch(epoch, start_batch)
        generator = torch.Generator()
        generator.manual_seed(runtime.worker_seed(self.cfg.seed, epoch, 1 << 16))
        workers = int(self.cfg.get("num_workers", 0))
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          drop_last=False, pin_memory=self.device.type == "cuda",
                          worker_init_fn=runtime.WorkerInit(self.cfg.seed, epoch), generator=generator,
                          persistent_workers=False)

    def to_device(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.to(self.device, non_blocking=True)
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.to_device(x) for x in obj)
        if isinstance(obj, dict):
            return {k: self.to_device(v) for k, v in obj.items()}
        return obj

    @property
    def last_step_lr(self) -> float:
        """The learning rate the latest optimiser step used (the schedule's, times its warm-up factor)."""
        return float(self.optimizer.param_groups[0]["lr"]) * warmup_factor(max(0, self.global_step - 1),
                                                                         self.warmup_steps)

    def log_scalars(self, values: Dict[str, float], step: int) -> None:
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)

    def _trim_metrics(self, completed_epochs: int) -> None:
        """Drop ``metrics.jsonl`` rows of epochs the checkpoint does not hold (logged before a kill that came
        ahead of the save), and a line cut short by the kill, so no epoch is logged twice: on resume, and
        (``completed_epochs`` 0) in a new run in the folder of an attempt killed before its first checkpoint."""
        path = self.work_dir / "metrics.jsonl"
        if not runtime.is_main_process() or not path.is_file():
            return
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = []
        for line in lines:
            try:
                if json.loads(line).get("epoch", 0) <= completed_epochs:
                    kept.append(line)
            except json.JSONDecodeError:
                continue
        if kept != lines:
            logger.info("%d row(s) of %s after epoch %d dropped (an interrupted attempt logged them before "
                        "its checkpoint; they are trained again)", len(lines) - len(kept), path, completed_epochs)
            save_text_atomic(path, "".join(f"{line}\n" for line in kept))

    def append_metrics(self, record: Dict[str, Any]) -> None:
        if self._metrics_file is not None and runtime.is_main_process():
            with open(self._metrics_file, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    def summary(self) -> str:
        model = self.build_model()
        lines = [f"{self.name}: {type(model).__name__}"]
        parts = getattr(model, "summary", None)
        if callable(parts):
            table = parts()
        else:
            table = {"model": count_parameters(model)}
        width = max(len(k) for k in table)
        for key, value in table.items():
            lines.append(f"  {key:<{width}}  {value:>14,}")
        if "total" not in table:
            lines.append(f"  {'total':<{width}}  {count_parameters(model):>14,}")
        return "\n".join(lines)

    # ----------------------------------------------------------- checkpoints
    def checkpoint_state(self, epoch: int, step_in_epoch: int) -> Dict[str, Any]:
        model = self.model.module if hasattr(self.model, "module") else self.model
        return {
            "model": model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "world_size": runtime.world_size(),
            "batch_size": int(self.cfg.batch_size),
            "stopped_early": self.stopped_early,
            # the running means of an unfinished epoch, so a resumed epoch logs what an uninterrupted one would
            "epoch_meters": self._epoch_meters.state_dict() if step_in_epoch and self._epoch_meters else None,
            "rng": runtime.rng_state(),
            "config": self.cfg.to_dict(),
            "processor": self.name,
            "extra": self.extra_state(),
        }

    def save(self, epoch: int, step_in_epoch: int, periodic: bool = False) -> None:
        """Write the checkpoint (rank 0); every process calls it at the same step.  Under DDP it also holds
        each process's generator states and running epoch means (``per_process``, in rank order), so that
        every process resumes with its own, not rank 0's."""
        meters = self._epoch_meters.state_dict() if step_in_epoch and self._epoch_meters else None
        per_process = runtime.gather_objects({"rng": runtime.rng_state(), "epoch_meters": meters})
        if not runtime.is_main_process():
            return
        state = self.checkpoint_state(epoch, step_in_epoch)
        if len(per_process) > 1:
            state["per_process"] = per_process
        copy = f"epoch_{epoch:04d}.pt" if periodic else None
        save_checkpoint(state, self.work_dir, copy)

    def resume_checkpoint(self) -> Optional[Dict[str, Any]]:
        """The checkpoint a resume continues from, or None for a new run; read once (the first call checks
        :meth:`resume_fixed_keys`) and kept until :meth:`try_resume` has restored it."""
        path = self.work_dir / LATEST
        if self._resume_state is None and self.cfg.get("resume") and path.exists():
            state = load_checkpoint(path, map_location=self.device)
            old, new = flatten(state.get("config") or {}), flatten(self.cfg.to_dict())
            fixed = [f"{key}: {old.get(key, '(absent)')} -> {new.get(key, '(absent)')}"
                     for key in self.resume_fixed_keys() if old.get(key) != new.get(key)]
            if fixed:
                raise ConfigError(f"resuming {path} with {'; '.join(fixed)}: these keys select the training samples, "
                                  f"so the resumed epochs would train on others than the saved ones did; resume with "
                                  f"the saved values, or start a new run (overwrite=true or another name=)")
            self._resume_state = state
        return self._resume_state

    def try_resume(self) -> tuple[int, int]:
        """(epoch, step_in_epoch) to start from: (0, 0) for a new run.  A resume writes its run record here, once
        every check of the checkpoint against this run (setup's included) has passed."""
        path = self.work_dir / LATEST
        state = self.resume_checkpoint()
        self._resume_state = None
        if state is None:
            self._trim_metrics(0)
            return 0, 0
        saved_world, world = int(state.get("world_size", 1)), runtime.world_size()
        saved_batch = int(state.get("batch_size", self.cfg.batch_size))
        if state["step_in_epoch"] and (saved_world, saved_batch) != (world, int(self.cfg.batch_size)):
            raise ConfigError(f"{path} was saved in the middle of an epoch by {saved_world} process(es) at "
                              f"batch_size {saved_batch}; resume it with {saved_world} process(es) and batch_size "
                              f"{saved_batch}, not {world} and {int(self.cfg.batch_size)} (its position counts "
                              f"global batches of batch_size x processes)")
        if saved_world != world:
            logger.warning("resuming %s, saved by %d process(es), with %d: the global batch changes from %d to %d",
                           path, saved_world, world, saved_world * int(self.cfg.batch_size),
                           world * int(self.cfg.batch_size))
        own = state
        per_process = state.get("per_process")
        if per_process and len(per_process) == world:
            own = per_process[runtime.rank()]
        elif world > 1 and runtime.rank() > 0:
            logger.warning("%s holds no generator state of process %d (saved by %d process(es)): it continues "
                           "from rank 0's, reseeded by its rank", path, runtime.rank(), saved_world)
        self._resumed_meters = own.get("epoch_meters")
        changed = changed_settings(state.get("config") or {}, self.cfg.to_dict())
        if changed:
            logger.warning("resuming %s with settings that differ from its checkpoint's: %s (the optimiser and "
                           "lr-scheduler states are restored from the checkpoint: learning rate, momentum, weight "
                           "decay and milestones stay as saved)", path, "; ".join(changed))
        model = self.model.module if hasattr(self.model, "module") else self.model
        try:
            model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as exc:    # torch's missing / unexpected keys, size or group mismatches
            first = " ".join(line.strip() for line in str(exc).strip().splitlines()[:2])   # what and the 1st key
            raise ConfigError(f"{path}: its model or optimiser does not fit this run's "
                              f"({'; '.join(changed) or 'no setting changed'}): resume with the settings it was "
                              f"saved with, or start again (overwrite=true). torch: {first}") from exc
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.global_step = state["global_step"]
        self.stopped_early = bool(state.get("stopped_early", False))
        self._trim_metrics(int(state["epoch"]))
        runtime.set_rng_state(own["rng"])
        if own is state and world > 1:
            runtime.seed_per_process(int(self.cfg.seed) + int(self.global_step))
        self.load_extra_state(state.get("extra") or {})
        self.write_run_record(resumed=True)
        logger.info("resumed from %s: epoch %d, step %d in epoch, global step %d",
                    path, state["epoch"], state["step_in_epoch"], self.global_step)
        return state["epoch"], state["step_in_epoch"]

    # ---------------------------------------------------------------- the loop
    def setup(self) -> None:
        self.device = runtime.resolve_device(self.cfg.device)
        runtime.seed_everything(self.cfg.seed, bool(self.cfg.get("deterministic")))
        self.resume_checkpoint()                 # a resume that changes a fixed key fails before any work
        self.build_data()
        self.model = self.build_model().to(self.device)
        if runtime.world_size() > 1:
            if self.cfg.get("sync_bn", True):
                self.model = convert_sync_batchnorm(self.model, self.device)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        runtime.seed_per_process(int(self.cfg.seed))       # DDP: dropout masks of their own on each process
        self.optimizer = self.build_optimizer()
        scheduler_cfg = self.cfg.get("scheduler", {"name": "none"})
        self.scheduler = build_scheduler(self.optimizer, scheduler_cfg)
        warmup_epochs = float(scheduler_cfg.get("warmup_epochs", 0) or 0)
        if warmup_epochs > 0:
            # the steps of an epoch as train_epoch's loader makes them (an evaluation keeps a last partial batch
            # with drop_last: false, and lowers a batch_size above its data)
            steps_per_epoch = len(self.make_loader(self.train_set, int(self.cfg.batch_size), 0, shuffle=True,
                                                   drop_last=True))
            self.warmup_steps = max(1, round(warmup_epochs * steps_per_epoch))

    def execute(self) -> Dict[str, Any]:
        self.setup()
        start_epoch, start_batch = self.try_resume()
        if runtime.is_main_process():
            self._metrics_file = self.work_dir / "metrics.jsonl"
            if self.cfg.get("tensorboard"):
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    self._tb = SummaryWriter(str(self.work_dir / "tensorboard"))
                except ImportError:
                    logger.info("tensorboard is not installed: scalars go to metrics.jsonl only")
        self.epoch = start_epoch
        if self.stopped_early:
            logger.info("resume: the plateau rule had stopped this run after epoch %d; finishing it", start_epoch)
        last_epoch = start_epoch if self.stopped_early else int(self.cfg.epochs)
        for epoch in range(start_epoch, last_epoch):
            self.epoch = epoch
            train_metrics = self.train_epoch(epoch, start_batch)
            start_batch = 0
            if self.stop_requested:
                break
            eval_metrics = self.shared_metrics(self.evaluate(epoch))
            epoch_lr = self.last_step_lr          # logged: the rate this epoch trained with, not the next one's
            stop = self.scheduler_step(eval_metrics)
            self.epoch = epoch + 1
            record = {"epoch": epoch + 1, "lr": epoch_lr, **{f"train/{k}": v for k, v in train_metrics.items()},
                      **{f"eval/{k}": v for k, v in eval_metrics.items()}}
            self.append_metrics(record)
            self.log_scalars({k: v for k, v in record.items() if k != "epoch"}, epoch + 1)
            logger.info("epoch %d/%d  %s", epoch + 1, self.cfg.epochs, format_epoch_record(record))
            interval = int(self.cfg.get("save_interval", 0) or 0)
            self.stopped_early = stop
            self.save(epoch + 1, 0, periodic=bool(interval) and (epoch + 1) % interval == 0)
            if stop:
                logger.info("stopping early after epoch %d (no improvement)", epoch + 1)
                break
        return self.finalize()

    def scheduler_step(self, eval_metrics: Dict[str, float]) -> bool:
        if self.scheduler is None:
            return False
        if isinstance(self.scheduler, PlateauRule):
            value = self.monitored_value(eval_metrics)
            if value is None:
                raise RuntimeError(f"{self.name}: a plateau scheduler needs evaluate() to return the monitored value")
            return self.scheduler.step(value)
        self.scheduler.step()
        return False

    def optimize(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        scale = warmup_factor(self.global_step, self.warmup_steps)
        if scale == 1.0:
            self.optimizer.step()
            return
        groups = self.optimizer.param_groups
        scheduled = [group["lr"] for group in groups]     # the epoch schedule's rates stay untouched
        for group in groups:
            group["lr"] *= scale
        self.optimizer.step()
        for group, lr in zip(groups, scheduled):
            group["lr"] = lr

    def train_epoch(self, epoch: int, start_batch: int = 0) -> Dict[str, float]:
        self.model.train()
        batch_size = int(self.cfg.batch_size)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        loader = self.make_loader(self.train_set, batch_size, epoch, shuffle=True, drop_last=True,
                                  start_batch=start_batch)
        meters = MeterGroup()
        if start_batch and self._resumed_meters:
            meters.load_state_dict(self._resumed_meters)  # this process's means over the steps before the resume
        self._resumed_meters = None
        self._epoch_meters = meters
        every = int(self.cfg.get("save_every_steps", 0) or 0)
        log_every = int(self.cfg.get("log_interval", 0) or 0)
        bar = tqdm(loader, desc=f"{self.name} epoch {epoch + 1}", leave=False, dynamic_ncols=True,
                   disable=not (runtime.is_main_process() and self.cfg.get("progress_bar", True)))
        step = start_batch
        for step, batch in enumerate(bar, start=start_batch):
            out = self.train_step(self.to_device(batch))
            self.optimize(out["loss"])
            meters.update(out)
            self.global_step += 1
            if log_every and self.global_step % log_every == 0:
                means = meters.means()
                bar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:3]})
                self.log_scalars({f"step/{k}": v for k, v in means.items()}, self.global_step)
            if every and self.global_step % every == 0:
                self._check_finite(meters.means(), epoch, step + 1)
                self.save(epoch, step + 1)
            if self.stop_requested:
                break
        bar.close()
        means = runtime.mean_over_processes(meters.means())
        self._check_finite(means, epoch, step + 1)
        return means

    def _check_finite(self, means: Dict[str, float], epoch: int, steps: int) -> None:
        """Stop on a NaN / Inf training metric before a checkpoint keeps it (read where the means are read
        anyway, at a save and at the epoch's end: no host round trip per step)."""
        bad = {k: v for k, v in means.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(
                f"{self.name}: non-finite training metrics {bad} in epoch {epoch + 1} (its first {steps} steps); "
                f"{self.work_dir / LATEST} holds the last checkpoint before them. Lower optim.lr, check the data "
                f"for NaN / Inf, or set scheduler.warmup_epochs")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
