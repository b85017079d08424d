"""NW-UCLA (Northwestern-UCLA Multiview Action3D) -> SCD-Net style arrays; a thin wrapper on json_gendata.

Input: ``--data-path`` = a folder like ``shared/data/nw_ucla`` holding ``all_sqe/*.json``
(``{file_name, skeletons [T][20][3], label 1..10}``) and ``val_label.pkl`` (the
standard cross-view test split: 464 sequences, all of view 3).  Output:
``<out-folder>/xview/{train,val}_data_joint.npy`` (N, 3, 300, 20, 2) float32 with
person 1 all zero, ``{train,val}_num_frame.npy``, ``{train,val}_label.pkl``
(labels 0..9; a file labelled outside 1..10 is bad input).  Training = views 1 and 2 (1,020 sequences), test = view 3.

Defaults: layout ``kinect_v1`` (20 joints), benchmark ``xview``, ``--max-frames 300``
(NW-UCLA has at most 201 frames), test list ``<data-path>/val_label.pkl`` when it
exists, else ``--test-regex _v03$``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_gen import json_gendata  # noqa: E402
from data_gen.class_names import load_class_names  # noqa: E402

TEST_VIEW_REGEX = r"_v03$"          # cross-view protocol: view 3 is the test view


def build_parser():
    parser = json_gendata.build_parser(
        description="Convert NW-UCLA JSON sequences (all_sqe/) into <out-folder>/xview/{train,val}_data_joint.npy "
                    "(N,3,T,20,2) float32, {train,val}_num_frame.npy, {train,val}_label.pkl. Test = view 3 "
                    "(val_label.pkl if present, else file names matching _v03$).",
        defaults={"benchmark": "xview", "layout": "kinect_v1", "max_frames": 300, "split": True,
                  "num_classes": len(load_class_names("nwucla"))},
        notes={"test_list": " (default: <data-path>/val_label.pkl when it exists, else --test-regex)",
               "test_regex": f" (default: {TEST_VIEW_REGEX}, view 3, when there is no val_label.pkl)",
               "num_persons": "; config/nwucla/ expects 1 (bench/nwucla.py passes --num-persons 1)",
               "num_classes": " (default: the 10 classes of data_gen/resources/classes_nwucla.txt)"})
    return parser


def resolve(args):
    """Point --data-path at all_sqe/ when given the dataset root; default split = val_label.pkl or view 3."""
    root = Path(args.data_path)
    if (root / "all_sqe").is_dir():
        args.data_path = root / "all_sqe"
    if args.test_list is None and args.test_regex is None:
        candidates = [root / "val_label.pkl", Path(args.data_path).parent / "val_label.pkl"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is not None:
            args.test_list = found
        else:
            args.test_regex = TEST_VIEW_REGEX
    return args


def main(argv=None) -> int:
    return json_gendata.run(resolve(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
