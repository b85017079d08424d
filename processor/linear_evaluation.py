"""``linear_evaluation``: frozen pretrained encoder + a linear classifier on [Z_t, Z_s] (acsar_facts.md §7).

``python main.py linear_evaluation --config config/ntu60/xsub/linear.yaml``; see
:mod:`processor.evaluation.classification` for the protocol, the monitored split and
the files written.  ``pretrained: null`` evaluates a randomly initialised encoder (baseline).
"""
from __future__ import annotations

from processor.evaluation.classification import ClassificationEvaluation
from processor.registry import register


@register("linear_evaluation")
class LinearEvaluation(ClassificationEvaluation):
    description = "linear evaluation: frozen pretrained encoder, linear classifier on [Z_t, Z_s]"
    kind = "linear"
