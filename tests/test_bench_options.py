"""The benchmark scripts refuse a count that cannot work at parse time, naming the option, before any work.

Before, ``train_step.py --steps 0`` silently ran the default 3 steps, ``gendata.py --counts 0`` wrote every
NTU-60 file name (over 100,000 files), ``text_encoders.py --num 0`` loaded both encoders and then failed
in ``np.concatenate``, ``data_pipeline.py --repeats 0`` wrote NaN figures after the whole run.
"""
import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def _no_work(*args, **kwargs):
    raise AssertionError("the benchmark started work on an option it should have refused")


# (script, argv, option named in the error, function that would start the work)
CASES = [
    ("train_step", ["--steps", "0"], "--steps", "cases"),
    ("train_step", ["--demo-batch-sizes", "16", "0"], "--demo-batch-sizes", "cases"),
    ("train_step", ["--threads", "0"], "--threads", "cases"),
    ("data_pipeline", ["--repeats", "0"], "--repeats", "make_split"),
    ("data_pipeline", ["--batch-size", "0"], "--batch-size", "make_split"),
    ("data_pipeline", ["--frames", "20"], "--frames", "make_split"),
    ("data_pipeline", ["--workers", "0", "-1"], "--workers", "make_split"),
    ("gendata", ["--counts", "0"], "--counts", "synth_texts"),
    ("gendata", ["--workers", "0"], "--workers", "synth_texts"),
    ("text_encoders", ["speed", "--num", "0"], "--num", "bench_speed"),
    ("text_encoders", ["speed", "--batch-size", "0"], "--batch-size", "bench_speed"),
    ("fast_paths", ["--repeats", "0"], "--repeats", "fast_and_plain"),
    ("run_all", ["--threads", "0"], "--threads", "script_args"),
]


@pytest.mark.parametrize("script, argv, option, work", CASES, ids=[f"{c[0]} {' '.join(c[1])}" for c in CASES])
def test_bad_counts_are_refused_before_any_work(script, argv, option, work, monkeypatch, capsys):
    module = importlib.import_module(script)
    monkeypatch.setattr(module, work, _no_work)
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "error:" in err, err


class _Parser(Exception):
    """Carries the parser a script built, out of its main() (raised instead of parsing)."""


@pytest.mark.parametrize("script", ["run_all", "train_step", "data_pipeline", "gendata", "text_encoders", "fast_paths",
                                    "synth_separability", "demo", "nwucla"])
def test_every_option_says_what_it_does(script, monkeypatch):
    """``--help`` documents every option (many printed the bare flag: --quick, --workers, --num, --json ...)."""
    import argparse

    def capture(self, args=None, namespace=None):
        raise _Parser(self)

    module = importlib.import_module(script)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parser) as built:
        (module.parse_args if script == "demo" else module.main)([])
    parser = built.value.args[0]
    bare = [action.option_strings or action.dest for action in parser._actions if not action.help]
    assert not bare, f"bench/{script}.py: options without a help text: {bare}"
