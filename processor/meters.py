"""Running averages of scalar metrics (one implementation for every processor)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Mapping

import torch


class AverageMeter:
    """Weighted running mean of one scalar."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        self.total += float(value) * n
        self.count += n

    @property
    def mean(self) -> float:
        return self.total / max(self.count, 1)


class MeterGroup:
    """A set of named meters fed from a dict of floats or 0-d tensors.

    Tensors are accumulated on their device and read back once, in
    :meth:`means`, so a training step never waits for the host.
    """

    def __init__(self) -> None:
        self._sums: "OrderedDict[str, torch.Tensor | float]" = OrderedDict()
        self._counts: Dict[str, int] = {}

    def update(self, values: Mapping[str, "torch.Tensor | float"], n: int = 1) -> None:
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float() * n
            else:
                value = float(value) * n
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + n

    def means(self) -> Dict[str, float]:
        return {k: float(v) / max(self._counts[k], 1) for k, v in self._sums.items()}

    def reset(self) -> None:
        self._sums.clear()
        self._counts.clear()

    def state_dict(self) -> Dict[str, Dict[str, float]]:
        """Plain floats (sums and counts), for a checkpoint taken in the middle of an epoch."""
        return {"sums": {k: float(v) for k, v in self._sums.items()}, "counts": dict(self._counts)}

    def load_state_dict(self, state: Mapping[str, Mapping[str, float]]) -> None:
        self.reset()
        self._sums.update((k, float(v)) for k, v in state["sums"].items())
        self._counts.update((k, int(v)) for k, v in state["counts"].items())
