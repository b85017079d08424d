"""Joint arrays -> motion arrays: ``{split}_data_joint.npy`` -> ``{split}_data_motion.npy``.

Both (N, C, T, V, M) float32; ``motion[t] = joint[t+1] - joint[t]``, last frame 0
(:func:`feeder.skeleton_ops.to_motion`, the one implementation; acsar_facts.md §6).
The SCD-Net convention is kept: a plain difference over the whole ``max_frames``
array, ignoring ``num_frame`` (frames past a sample's valid length hold the
repeated sequence written by the pre-normalisation, so the step from the last
valid frame back to the first is one large motion value; the SCD-Net feeders
compute motion on the cropped clip instead and do not read these arrays).
Chunked memmaps, written atomically.

Usage: ``python data_gen/gen_motion_data.py --folder data/ntu60/xsub data/ntu60/xview``
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_gen.gen_bone_data import stream_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(stream_main("motion"))
