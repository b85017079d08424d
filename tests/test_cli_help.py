"""``--help`` of the command-line scripts: no ``(default: None)`` / ``(default: False)`` noise, real defaults shown."""
import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from data_gen import gen_bone_data, json_gendata, ntu_gendata, pku_gendata, ucla_gendata
from data_gen.cli import DefaultsHelpFormatter

ROOT = Path(__file__).resolve().parents[1]

PARSERS = {
    "ntu_gendata": ntu_gendata.build_parser,
    "pku_gendata": pku_gendata.build_parser,
    "json_gendata": json_gendata.build_parser,
    "ucla_gendata": ucla_gendata.build_parser,
    "gen_bone_data": lambda: gen_bone_data.stream_parser("bone"),
    "gen_motion_data": lambda: gen_bone_data.stream_parser("motion"),
}


def _help_of(parser: argparse.ArgumentParser, option: str) -> str:
    """The help block of one option (from its flag to the next option), whitespace collapsed."""
    text = parser.format_help()
    block = re.search(rf"^  {re.escape(option)}\b.*?(?=^  -|\Z)", text, re.S | re.M)
    assert block, option
    return " ".join(block.group(0).split())


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_data_scripts_print_no_empty_defaults(name):
    parser = PARSERS[name]()
    text = " ".join(parser.format_help().split())
    assert "(default: None)" not in text and "(default: False)" not in text
    for action in parser._actions:
        if action.required and action.option_strings:
            assert "(default:" not in _help_of(parser, action.option_strings[0]), action.option_strings


def test_real_defaults_are_still_shown():
    assert "(default: 300)" in _help_of(ntu_gendata.build_parser(), "--max-frames")
    assert "(default: raise)" in _help_of(pku_gendata.build_parser(), "--on-error")
    assert "(default: kinect_v1)" in _help_of(ucla_gendata.build_parser(), "--layout")
    # a default worked out at run time is said in words, not as None
    test_list = _help_of(ucla_gendata.build_parser(), "--test-list")
    assert "val_label.pkl" in test_list and "None" not in test_list
    layout = _help_of(gen_bone_data.stream_parser("bone"), "--layout")
    assert "inferred from the joint count" in layout and "None" not in layout


def test_formatter_rules():
    parser = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--req", required=True, help="required")
    parser.add_argument("--opt", default=None, help="optional")
    parser.add_argument("--flag", action="store_true", help="a flag")
    parser.add_argument("--num", type=int, default=3, help="a number")
    parser.add_argument("--said", default="x", help="said in words (default: x, or y)")
    text = " ".join(parser.format_help().split())
    assert "required --opt" in text.replace("(default", "") and "(default: None)" not in text
    assert "a flag --num" in text and "a number (default: 3)" in text
    assert text.count("(default:") == 2                       # --num, and --said's own words once


@pytest.mark.parametrize("script", ["bench/nwucla.py", "main.py"])
def test_other_scripts_print_no_empty_defaults(script):
    out = subprocess.run([sys.executable, script, *(["pretrain_acsar"] if script == "main.py" else []), "--help"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "(default: None)" not in text and "(default: False)" not in text
    if script == "bench/nwucla.py":
        assert "../shared/data/nw_ucla" in text                # where --source looks when not given


@pytest.mark.parametrize("script, args, message", [
    ("encode_text.py", ["--bench", "data/none", "--split", "train", "--descriptions", "d", "--encoder", "clip",
                        "--clip-checkpoint", "missing/ViT-B-32.pt"], "CLIP checkpoint not found: missing/ViT-B-32.pt"),
    ("action_images.py", ["video", "--out", "images", "--videos", "videos", "--weights", "missing/yolov5mu.pt"],
     "YOLO weights not found: missing/yolov5mu.pt"),
    ("describe.py", ["vlm", "--images", "images", "--out", "desc", "--model", "missing/ovis"],
     "VLM folder not found: missing/ovis"),
])
def test_a_missing_input_ends_a_text_script_with_one_error_line(tmp_path, script, args, message):
    """The description scripts report a missing input as the gendata scripts do: one ERROR line, exit code 1."""
    proc = subprocess.run([sys.executable, str(ROOT / "data_gen" / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR data_gen: {message}"), proc.stderr[-2000:]


def test_exit_code_of_passes_other_errors_on_with_their_traceback():
    from data_gen.cli import exit_code_of

    def broken():
        raise RuntimeError("a bug, not an input error")

    with pytest.raises(RuntimeError, match="a bug"):
        exit_code_of(broken)
    assert exit_code_of(lambda: 0) == 0


@pytest.mark.parametrize("name, option", [("ntu_gendata", "--max-frames"), ("ntu_gendata", "--workers"),
                                          ("pku_gendata", "--max-frames"), ("json_gendata", "--max-frames"),
                                          ("json_gendata", "--num-persons"), ("ntu_gendata", "--limit"),
                                          ("pku_gendata", "--limit"), ("json_gendata", "--limit")])
@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_counts_below_one_are_refused_by_the_parser(name, option, value, capsys):
    """``--max-frames 0`` wrote arrays of no frames that failed only later, in the feeder; ``--limit -3`` (a
    Python slice) converted all files but the last three and exited 0."""
    parser = PARSERS[name]()
    required = [a for a in parser._actions if a.required and a.option_strings]
    argv = [x for a in required for x in (a.option_strings[0], "x")] + [option, value]
    if name == "json_gendata":
        argv = ["--test-regex", "x", *argv]              # one of --test-list / --test-regex is required
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    assert f"argument {option}: expected an integer >= 1, got" in capsys.readouterr().err
    assert getattr(parser.parse_args(argv[:-1] + ["7"]), option[2:].replace("-", "_")) == 7
