"""``finetune``: the whole pretrained encoder trained with the classifier on all labels (C²VL protocol).

Also the transfer protocol (C²VL Table V): pretrained on one dataset (``pretrained``),
fine-tuned and tested on another (``data``), e.g. config/transfer/ntu60_to_pku2.yaml;
the skeleton layout and the encoder configuration must match the checkpoint.
"""
from __future__ import annotations

from processor.evaluation.classification import ClassificationEvaluation
from processor.registry import register


@register("finetune")
class Finetune(ClassificationEvaluation):
    description = "fine-tuning / transfer evaluation: the pretrained encoder trained end to end with a classifier"
    kind = "finetune"
