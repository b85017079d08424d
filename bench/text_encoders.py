"""Benchmarks for the text side of data generation (run by hand; prints a table).

- ``speed``: 1,000 description-like sentences through the CLIP ViT-B-32 text tower
  (random weights: the speed and the equality do not depend on the weights) and
  MiniLM, ``pad_mode="full"`` (all 77 positions) vs ``"truncate"`` (positions up to
  the batch's longest sentence; zeros after each sentence's EOT); reports seconds,
  speed-up, the max abs difference over all 77 positions and the peak RSS of each
  encoder (each runs in its own process; ``rss_before_model_mb``: that process with
  torch and the libraries imported, before the model is built).
- ``kinematic``: the kinematic describer on the synthetic demo data
  (``data_gen/synth_gendata.py`` -> ``data_gen/ntu_gendata.process_file``): mean
  MiniLM cosine similarity of the sentences within a class vs across classes; then
  the sentences of the real NTU samples in ``../shared/data/ntu_samples`` if present.

Usage::

    python bench/text_encoders.py speed [--num 1000] [--batch-size 64] [--threads 2] [--encoders clip minilm]
                                        [--json out.json]
    python bench/text_encoders.py kinematic [--classes 17] [--performers 4]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_gen import offline  # noqa: E402,F401
from data_gen.cli import positive_int  # noqa: E402

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import conditions, emit_json, peak_rss_mb, print_case_result, run_case_process  # noqa: E402


def make_sentences(num: int, seed: int = 0) -> list:
    """Description-like sentences of varied length (like the describers' output)."""
    rng = np.random.default_rng(seed)
    subj = ["a person", "a man", "a woman", "two people", "someone"]
    verbs = ["raises the right hand to the head", "brings the left hand to the mouth", "sits down",
             "stretches both arms forward", "claps the hands together", "bows forward and rises again",
             "approach each other and shake hands", "kicks with the right leg", "steps with alternating legs"]
    extra = ["quickly", "slowly", "repeatedly", "then lowers it", "while standing", "and looks down", ""]
    return [" ".join(filter(None, [subj[rng.integers(len(subj))], verbs[rng.integers(len(verbs))],
                                   extra[rng.integers(len(extra))], extra[rng.integers(len(extra))]]))[:75]
            for _ in range(num)]


def _timed(encoder, texts, batch_size):
    start = time.perf_counter()
    out = np.concatenate([encoder.encode_tokens(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
    return out, time.perf_counter() - start


ENCODERS = ("clip", "minilm")
ENCODER_LABELS = {"clip": "clip ViT-B-32", "minilm": "minilm"}


def _rss_mb() -> float:
    """Resident set size of this process now (MiB)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def speed_case(encoder: str, num: int, batch_size: int) -> dict:
    """One encoder, full vs truncated, in this process (a fresh one: its peak RSS is this encoder's)."""
    from data_gen.encode_text import ClipTextEncoder, MiniLMEncoder

    texts = make_sentences(num)
    before = _rss_mb()                                   # torch and the libraries imported, no model yet
    enc = ClipTextEncoder(allow_random_weights=True) if encoder == "clip" else MiniLMEncoder()
    enc.pad_mode = "full"
    full, t_full = _timed(enc, texts, batch_size)
    enc.pad_mode = "truncate"
    fast, t_fast = _timed(enc, texts, batch_size)
    return {"encoder": ENCODER_LABELS[encoder], "sentences": num, "batch": batch_size, "full_s": t_full,
            "truncate_s": t_fast, "full_sentences_per_s": num / t_full, "truncate_sentences_per_s": num / t_fast,
            "speedup": t_full / t_fast, "max_abs_diff": float(np.abs(fast - full).max()),
            "rss_before_model_mb": before,
            "peak_rss_mb": peak_rss_mb()}


def bench_speed(num: int, batch_size: int, encoders=ENCODERS) -> list:
    """Each encoder in its own process (so that each peak RSS is that encoder's alone); rows in ``encoders`` order."""
    rows = []
    for encoder in encoders:
        result, stderr = run_case_process([__file__, "speed", "--num", num, "--batch-size", batch_size,
                                           "--threads", torch.get_num_threads(), "--case", encoder])
        if result is None:
            raise RuntimeError(f"text encoder {encoder} failed: {stderr[-2000:]}")
        rows.append(result)
    print(f"{num} sentences, batch {batch_size}, {torch.get_num_threads()} threads")
    print(f"{'encoder':<14} {'full 77 (s)':>11} {'truncate (s)':>12} {'speed-up':>8} {'max|diff| all 77':>22} "
          f"{'peak RSS (MB)':>13}")
    for r in rows:
        print(f"{r['encoder']:<14} {r['full_s']:>11.2f} {r['truncate_s']:>12.2f} {r['speedup']:>7.1f}x "
              f"{r['max_abs_diff']:>22.2e} {r['peak_rss_mb']:>13.0f}")
    return rows


def bench_kinematic(classes: int, performers: int) -> None:
    from data_gen.encode_text import MiniLMEncoder
    from data_gen.kinematic_describer import KinematicDescriber
    from data_gen.ntu_gendata import process_file
    from data_gen.synth_gendata import generate_dataset
    from net.graph import get_layout

    describer = KinematicDescriber(get_layout("ntu25"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate_dataset(tmp, progress=False, num_classes=classes,
                                 performers=tuple(range(1, performers + 1)), replications=(1,))
        names = (Path(tmp) / "class_names.txt").read_text().splitlines()
        labels = np.array([int(p.stem.split("A")[-1]) - 1 for p in paths])
        texts = [describer.describe(*process_file(p)) for p in paths]
    emb = MiniLMEncoder().encode_sentence(texts)[:, 0]
    sim = emb @ emb.T
    same = labels[:, None] == labels[None]
    off = ~np.eye(len(labels), dtype=bool)
    print(f"synthetic demo data: {len(texts)} samples, {classes} classes, {len(set(texts))} distinct sentences")
    print(f"mean MiniLM cosine within class {sim[same & off].mean():.3f}, across classes {sim[~same].mean():.3f}")
    for c in range(classes):
        first = texts[int(np.flatnonzero(labels == c)[0])]
        print(f"  {names[c]:<24} {first}")
    real = ROOT.parent / "shared" / "data" / "ntu_samples"
    if real.is_dir():
        print("real NTU samples:")
        for p in sorted(real.glob("*.skeleton")):
            print(f"  {p.stem}  {describer.describe(*process_file(p))}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "kinematic"], help="which benchmark (module docstring)")
    parser.add_argument("--num", type=positive_int, default=1000, help="speed: sentences encoded [1000]")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="speed: sentences per batch [64]")
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads [2]")
    parser.add_argument("--classes", type=positive_int, default=17, help="kinematic: synthetic classes [17]")
    parser.add_argument("--performers", type=positive_int, default=4, help="kinematic: synthetic performers [4]")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS),
                        help="speed: the encoders to measure, each in its own process [clip minilm]")
    parser.add_argument("--json", type=Path, default=None, help="speed: also write the rows and conditions here")
    parser.add_argument("--case", choices=ENCODERS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.case:
        print_case_result(speed_case(args.case, args.num, args.batch_size))
        return 0
    if args.what == "speed":
        rows = bench_speed(args.num, args.batch_size, args.encoders)
        if args.json is not None:
            emit_json(args.json, {"rows": rows, "conditions": conditions()})
    else:
        bench_kinematic(args.classes, args.performers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
