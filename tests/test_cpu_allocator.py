"""``reuse_freed_memory`` (processor/cpu_allocator.py): large blocks come from the heap, results unchanged.

Every check runs in a fresh interpreter: the malloc settings are process-wide and cannot be undone
from Python, so the test process itself keeps glibc's defaults.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from processor.cpu_allocator import mmapped_bytes

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(mmapped_bytes() is None, reason="needs glibc >= 2.33 (mallopt, mallinfo2)")

# Where a 64 MB tensor's memory comes from: glibc's default puts it in its own mmap'd block.
BLOCKS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from processor.cpu_allocator import mmapped_bytes, reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[2] == "reuse" else False
import torch
before = mmapped_bytes()
x = torch.ones(16 * 2 ** 20)
print(json.dumps({"applied": applied, "mmapped_growth": mmapped_bytes() - before, "sum": float(x.sum())}))
"""

# Two pretraining steps of the demo model, batch 32 (stem activations of 6.5 MB: under glibc's defaults
# the first of them get their own mappings, until its dynamic threshold rises); losses and a digest of
# every weight.
STEPS = r"""
import hashlib, json, os, sys
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "bench")]
from train_step import build
import torch
torch.set_num_threads(1)
torch.manual_seed(0)
proc = build("demo", True, torch.device("cpu"), malloc=sys.argv[2])
cfg, batch = proc.cfg, 32
g = torch.Generator().manual_seed(1)
shape = (batch, 3, cfg.data.window, 25, cfg.model.num_person)
x1, x2 = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
text = torch.randn(batch, cfg.text.num_tokens, cfg.text.feature_dim, generator=g).half()
losses = []
for _ in range(2):
    out = proc.train_step((x1, x2, text, torch.arange(batch)))
    proc.optimize(out["loss"])
    losses.append(out["loss"].item())
digest = hashlib.md5(b"".join(p.detach().numpy().tobytes() for p in proc.model.parameters())).hexdigest()
print(json.dumps({"losses": losses, "params": digest}))
"""


def _child(script: str, mode: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script, str(ROOT), mode], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_blocks_come_from_the_heap_when_applied():
    system, reuse = _child(BLOCKS, "system"), _child(BLOCKS, "reuse")
    assert system["applied"] is False and reuse["applied"] is True
    assert system["mmapped_growth"] >= 64 * 2 ** 20          # glibc's default: its own mapping
    assert reuse["mmapped_growth"] == 0                       # the heap, kept for reuse after free
    assert system["sum"] == reuse["sum"] == 16 * 2 ** 20


def test_pretraining_steps_are_bitwise_equal_with_and_without_it():
    system, reuse = _child(STEPS, "system"), _child(STEPS, "reuse")
    assert system["losses"] == reuse["losses"]
    assert system["params"] == reuse["params"]
    assert system["losses"][0] != system["losses"][1]         # the second step saw updated weights


def test_processors_apply_the_config_key(monkeypatch, tmp_path):
    import processor.cpu_allocator as cpu_allocator
    from processor.report import Report

    calls = []
    monkeypatch.setattr(cpu_allocator, "reuse_freed_memory", lambda: calls.append(1) or True)
    for value, expected in (("true", 1), ("false", 1)):
        Report.from_config(None, [f"work_dir={tmp_path}", f"name=r_{value}", f"reuse_freed_memory={value}"]).run()
        assert len(calls) == expected
