"""``semi_supervised``: train on a class-balanced 1 % / 5 % / 10 % of the labels (acsar_facts.md §7).

The subset (``label_fraction``, ``subset_seed``) is saved as ``subset_indices.json``.
Default ``freeze_encoder: true``: the pretrained encoder stays frozen and only the linear
classifier is trained on the labelled subset, as in the paper's downstream stage;
``freeze_encoder=false cache_features=false`` fine-tunes the encoder with it instead (the
CrosSCLR / AimCLR protocol).
"""
from __future__ import annotations

from processor.evaluation.classification import ClassificationEvaluation
from processor.registry import register


@register("semi_supervised")
class SemiSupervised(ClassificationEvaluation):
    description = "semi-supervised evaluation: train on a class-balanced fraction (1/5/10 %) of the labels"
    kind = "semi"
