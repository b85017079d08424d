"""Learning-rate schedules that are not in ``torch.optim.lr_scheduler``.

:class:`PlateauRule` is the paper's evaluation rule (acsar_facts.md §7): when
the monitored accuracy has not improved for ``patience`` epochs, multiply the
learning rate by ``factor``; when it has not improved for ``stop_patience``
epochs, stop.

:func:`warmup_factor` is the linear warm-up of ``scheduler.warmup_epochs`` (the
paper uses none): optimiser step ``s`` (0-based) of the first ``steps`` runs at
``(s + 1) / steps`` times the rate the epoch schedule gives.  It is a function of
the global step only, so it needs no state of its own and composes with any
schedule (a milestone or plateau reduction inside the warm-up included).
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch

__all__ = ["SCHEDULERS", "PlateauRule", "warmup_factor", "build_scheduler"]


class PlateauRule:
    def __init__(self, optimizer: torch.optim.Optimizer, patience: int, stop_patience: int,
                 factor: float, mode: str = "max", min_lr: float = 0.0) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"PlateauRule mode must be max or min, got {mode!r}")
        if int(patience) < 1 or int(stop_patience) < 1:
            raise ValueError(f"scheduler.patience and scheduler.stop_patience count epochs without improvement and "
                             f"must be at least 1, got {patience} and {stop_patience}")
        if not 0.0 < float(factor) <= 1.0:
            raise ValueError(f"scheduler.gamma (the plateau rule's lr factor) must lie in (0, 1], got {factor}")
        self.optimizer, self.patience, self.stop_patience = optimizer, int(patience), int(stop_patience)
        self.factor, self.mode, self.min_lr = factor, mode, min_lr
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.epoch = -1
        self.history: List[Dict[str, float]] = []

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def step(self, value: float) -> bool:
        """Record one epoch's monitored value; returns True when training should stop."""
        self.epoch += 1
        if self._improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs % self.patience == 0 and self.bad_epochs < self.stop_patience:
                for group in self.optimizer.param_groups:
                    group["lr"] = max(group["lr"] * self.factor, self.min_lr)
        self.history.append({"epoch": self.epoch, "value": value, "lr": self.optimizer.param_groups[0]["lr"]})
        return self.bad_epochs >= self.stop_patience

    def get_last_lr(self) -> List[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)


def warmup_factor(step: int, steps: int) -> float:
    """Learning-rate multiplier of optimiser step ``step`` (0-based): ``(step + 1) / steps``, then 1."""
    return min(1.0, (step + 1) / steps) if steps > 0 else 1.0


SCHEDULERS = ("multistep", "plateau", "none")      # the scheduler.name values build_scheduler knows


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Dict[str, Any]):
    """``cfg.name``: ``multistep`` (milestones, gamma), ``plateau`` (patience, stop_patience, factor) or ``none``."""
    name = cfg.get("name", "none")
    if name == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg["milestones"]), gamma=cfg["gamma"])
    if name == "plateau":
        return PlateauRule(optimizer, patience=cfg["patience"], stop_patience=cfg["stop_patience"],
                           factor=cfg["gamma"])
    if name == "none":
        return None
    raise ValueError(f"unknown scheduler {name!r}; expected one of {', '.join(SCHEDULERS)}")
