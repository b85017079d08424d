"""``semi_supervised``: train on a class-balanced 1 % / 5 % / 10 % of the labels (acsar_facts.md §7).

The subset (``label_fraction``, ``subset_seed``) is saved as ``subset_indices.json``.
Default ``freeze_encoder: false``: the pretrained encoder is fine-tuned together with
the classifier on the labelled subset (the CrosSCLR / AimCLR / SCD-Net semi-supervised
protocol that AC-SAR follows, paper §5.1 "与文献[6]和文献[10]保持一致").
"""
from __future__ import annotations

from processor.evaluation.classification import ClassificationEvaluation
from processor.registry import register


@register("semi_supervised")
class SemiSupervised(ClassificationEvaluation):
    description = "semi-supervised evaluation: fine-tune on a class-balanced fraction (1/5/10 %) of the labels"
    kind = "semi"
