"""Action class names per dataset, index = 0-based label.

Lists live in ``data_gen/resources/classes_<dataset>.txt`` (one name per line):
``ntu60`` (60) and ``ntu120`` (120): the official names (shahroudy/NTURGB-D README);
``nwucla`` (10): the standard NW-UCLA list in label order 1..10;
``pku1`` (51): PKU-MMD I ``Actions.xlsx`` order (class id = line number).

``pku2`` (PKU-MMD II, 41 classes) uses the PKU-MMD I numbering with 10 ids
unused; which 10 could not be verified offline, so its names come from the
``label_map.json`` that ``data_gen/pku_gendata.py`` writes next to the arrays
(``class_ids[i]`` = the PKU id of label i, looked up in the ``pku1`` list).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

__all__ = ["load_class_names", "DATASETS"]

RESOURCES = Path(__file__).resolve().parent / "resources"
DATASETS = ("ntu60", "ntu120", "pku1", "pku2", "nwucla")
_ALIASES = {"ntu": "ntu60", "ntu-60": "ntu60", "ntu-120": "ntu120", "pku": "pku2", "pku-mmd-ii": "pku2",
            "pkummd2": "pku2", "pku_v2": "pku2", "pku-mmd-i": "pku1", "ucla": "nwucla", "nw-ucla": "nwucla",
            "nw_ucla": "nwucla"}


def _read(name: str) -> List[str]:
    path = RESOURCES / f"classes_{name}.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_class_names(dataset: str, label_map: Optional[Path] = None) -> List[str]:
    """Class names of ``dataset`` (``ntu60``, ``ntu120``, ``pku1``, ``pku2``, ``nwucla``), label order.

    Args:
        label_map: for ``pku2``: the ``label_map.json`` written by pku_gendata (required).
    """
    key = _ALIASES.get(dataset.lower(), dataset.lower())
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {dataset!r}; known: {DATASETS}")
    if key != "pku2":
        return _read(key)
    if label_map is None:
        raise ValueError("pku2 class names need the label_map.json written by data_gen/pku_gendata.py "
                         "(PKU-MMD II uses 41 of the 51 PKU-MMD I ids)")
    obj = json.loads(Path(label_map).read_text(encoding="utf-8"))
    pku1 = _read("pku1")
    ids = obj.get("class_ids")
    if obj.get("label_map") == "raw" or ids is None:
        return pku1
    bad = [i for i in ids if not 1 <= int(i) <= len(pku1)]
    if bad:
        raise ValueError(f"{label_map}: class ids {bad} outside 1..{len(pku1)}")
    return [pku1[int(i) - 1] for i in ids]
