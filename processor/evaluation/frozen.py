"""The frozen-encoder guard of linear evaluation and kNN.

``FrozenGuard(module)`` snapshots every parameter and buffer (BatchNorm running mean,
variance and batch counters included) on the CPU; ``check()`` raises
:class:`FrozenWeightsChanged` naming the tensors that differ (exact comparison).
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn

__all__ = ["FrozenGuard", "FrozenWeightsChanged"]


class FrozenWeightsChanged(RuntimeError):
    """A module that had to stay frozen was modified."""


class FrozenGuard:
    def __init__(self, module: nn.Module, what: str = "encoder") -> None:
        self.module, self.what = module, what
        self.snapshot: Dict[str, torch.Tensor] = {k: v.detach().to("cpu", copy=True)
                                                  for k, v in module.state_dict().items()}

    def changed(self) -> List[str]:
        now = self.module.state_dict()
        out = [k for k in self.snapshot if k not in now]
        out += [k for k, v in now.items() if k not in self.snapshot or not torch.equal(v.detach().cpu(), self.snapshot[k])]
        return out

    def check(self) -> int:
        """Raise when anything moved; return the number of tensors checked."""
        changed = self.changed()
        if changed:
            shown = ", ".join(changed[:10]) + (f", ... ({len(changed)} in all)" if len(changed) > 10 else "")
            raise FrozenWeightsChanged(f"the frozen {self.what} changed during training: {shown}")
        return len(self.snapshot)
