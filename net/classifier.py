"""Downstream model: the SCD-Net dual-branch encoder + a linear head on [z_t, z_s].

``SkeletonClassifier.forward(x (N, C, T, V, M)) -> logits (N, num_classes)``;
``features(x) -> (N, 2*C2)`` = ``[z_t, z_s]`` (the kNN / linear-probe feature).

Constructor: the encoder arguments of :class:`net.encoder.DualBranchEncoder`
(the same keys as the ACSAR config: ``layout, in_channels, num_person,
num_frame, stem_channels, hidden_dim, num_heads, num_layers, ff_dim, dropout``
[, ``tcn_kernel_size, tcn_dilations``]) plus ``num_classes``, ``freeze_encoder``
and ``head_init_std``.  :meth:`SkeletonClassifier.from_config` takes a whole
pretraining model config and ignores the keys that are not the encoder's.

``freeze_encoder=True`` (linear evaluation): the encoder has
``requires_grad=False`` and stays in eval mode even when the classifier is in
train mode, so its BatchNorm statistics never move; its features are computed
without autograd.  Init: xavier_uniform on the encoder's 2-D parameters (as
SCD-Net when training from scratch; replaced by :meth:`load_encoder_state`),
head weight N(0, head_init_std), bias 0 (MoCo / SCD-Net linear protocol).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .acsar import xavier_init_2d
from .encoder import ENCODER_KWARGS, DualBranchEncoder
from .scdnet_checkpoint import encoder_state_dict

__all__ = ["SkeletonClassifier"]


class SkeletonClassifier(nn.Module):
    """Dual-branch encoder (``encoder``) + ``fc`` Linear(2*C2 -> num_classes).

    ``head_norm=True`` puts a parameter-free ``BatchNorm1d`` (standardisation with running
    statistics) before the Linear [ours]: still a linear classifier of the features, but its
    training no longer depends on their scale, so one learning rate suits any encoder.  With a
    frozen encoder its running statistics are the cumulative average over the batches seen (the
    training features' mean and variance after one epoch, not drifting from N(0, 1) towards them
    over the first tens of epochs).
    """

    def __init__(self, *, num_classes: int, freeze_encoder: bool, head_init_std: float = 0.01,
                 head_norm: bool = False, **encoder_kwargs):
        super().__init__()
        self.encoder = DualBranchEncoder(**encoder_kwargs)
        xavier_init_2d(self.encoder)
        linear = nn.Linear(self.encoder.feature_dim, num_classes)
        nn.init.normal_(linear.weight, 0.0, head_init_std)
        nn.init.zeros_(linear.bias)
        self.fc = linear
        if head_norm:
            # Frozen encoder: the features never change, so the running statistics are the cumulative
            # average of the batch statistics (momentum None), exact after one pass and independent of
            # the epoch count; a trained encoder keeps PyTorch's exponential average (momentum 0.1).
            norm = nn.BatchNorm1d(self.encoder.feature_dim, affine=False, momentum=None if freeze_encoder else 0.1)
            self.fc = nn.Sequential(norm, linear)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    @classmethod
    def from_config(cls, model_cfg: Mapping, *, num_classes: int, freeze_encoder: bool,
                    head_init_std: float = 0.01, head_norm: bool = False) -> "SkeletonClassifier":
        """Build from a pretraining model config (extra keys such as ``text`` or ``queue_size`` ignored)."""
        encoder_kwargs = {k: model_cfg[k] for k in ENCODER_KWARGS if k in model_cfg}
        return cls(num_classes=num_classes, freeze_encoder=freeze_encoder, head_init_std=head_init_std,
                   head_norm=head_norm, **encoder_kwargs)

    def train(self, mode: bool = True) -> "SkeletonClassifier":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> [z_t, z_s] (N, 2*C2)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            z_t, z_s = self.encoder(x)
            return torch.cat([z_t, z_s], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def load_encoder_state(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load the encoder from an ACSAR / SCD-Net pretraining or downstream state dict (see
        :func:`net.scdnet_checkpoint.encoder_state_dict`); raise listing missing, unexpected and mis-shaped keys."""
        state = encoder_state_dict(state_dict)
        own = self.encoder.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in set(own) & set(state) if state[k].shape != own[k].shape)
        if missing or unexpected or shapes:
            def show(items):
                return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "") or "none"
            raise KeyError(f"encoder state does not match the model: missing [{show(missing)}]; "
                           f"unexpected [{show(unexpected)}]; shape mismatch [{show(shapes)}]")
        self.encoder.load_state_dict(state, strict=True)
