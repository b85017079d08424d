#!/usr/bin/env python
"""AC-SAR entry point: ``python main.py <processor> --config <yaml> [key.sub=value ...]``.

``python main.py --help`` lists the processors; ``python main.py <processor> --help``
shows that processor's config keys with their defaults and sources.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _top_level_help(processors) -> str:
    width = max(len(n) for n in processors)
    rows = "\n".join(f"  {name:<{width}}  {cls.description}" for name, cls in processors.items())
    return (
        "usage: python main.py <processor> --config <yaml> [--resume] [--overwrite] [--summary] [key.sub=value ...]\n\n"
        "AC-SAR: skeleton action recognition with generated action descriptions.\n\n"
        f"processors:\n{rows}\n\n"
        "python main.py <processor> --help shows its config keys and defaults."
    )


def _processor_parser(cls) -> argparse.ArgumentParser:
    from processor.config import TYPES_KEY, dump_yaml, load_with_bases

    path = cls.defaults_path()
    described = f"{cls.description}\n\nConfig keys and defaults, with their sources ({path.relative_to(ROOT)}):\n\n"
    if path.is_file():
        described += path.read_text(encoding="utf-8")
        defaults = load_with_bases(path)
        types = defaults.pop(TYPES_KEY, {})
        described += "\n\nEvery key with its default, the _base_ files included:\n\n" + dump_yaml(defaults)
        if types:
            described += "\nTypes of the keys whose default does not say it:\n\n" + dump_yaml(types)
    parser = argparse.ArgumentParser(prog=f"python main.py {cls.name}", description=described,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="YAML config (may use _base_)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the work dir (resume=true)")
    parser.add_argument("--overwrite", action="store_true", help="run again into a finished run's work dir")
    parser.add_argument("--summary", action="store_true",
                        help="build the model from the config, print parameter counts and exit (reads no data)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value",
                        help="config overrides; values are YAML (e.g. optim.lr=0.1 data.stream=bone)")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from processor.config import ConfigError
    from processor.registry import discover
    from processor.runtime import RunDirError, Terminated

    processors = discover()
    if not argv or argv[0] in ("-h", "--help"):
        print(_top_level_help(processors))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in processors:
        import difflib

        close = difflib.get_close_matches(name, list(processors), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"error: unknown processor {name!r}{hint}\n\n{_top_level_help(processors)}", file=sys.stderr)
        return 2
    cls = processors[name]
    args = _processor_parser(cls).parse_intermixed_args(rest)  # overrides before and after the options
    overrides = list(args.overrides)
    if args.resume:
        overrides.append("resume=true")
    if args.overwrite:
        overrides.append("overwrite=true")
    processor = None
    try:
        processor = cls.from_config(args.config, overrides, argv=[str(ROOT / "main.py"), *argv])
        if args.summary:
            logging.basicConfig(level=logging.WARNING)
            print(processor.summary())
            return 0
        processor.run()
    except (ConfigError, RunDirError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as err:     # Ctrl-C, kill: one line instead of a traceback
        print(f"error: {_interrupted(err, getattr(processor, 'work_dir', None))}", file=sys.stderr)
        return err.code if isinstance(err, Terminated) else 128 + 2        # as the default handlers: 143, 130
    except (OSError, ValueError) as err:      # missing, malformed or mismatched inputs, as the data_gen/ scripts
        work_dir = getattr(processor, "work_dir", None)
        log = Path(work_dir) / "log.txt" if work_dir else None
        where = f" (traceback in {log})" if log is not None and log.is_file() else ""
        print(f"error: {err}{where}", file=sys.stderr)
        return 1
    return 0


def _interrupted(err: BaseException, work_dir) -> str:
    """What stopped the run and how to continue it (the traceback is in the run's log.txt)."""
    from processor.checkpoint import LATEST

    what = "Ctrl-C" if isinstance(err, KeyboardInterrupt) else str(err)
    if work_dir is None or not Path(work_dir).is_dir():
        return f"interrupted by {what} before the run folder was made"
    latest = Path(work_dir) / LATEST
    if latest.is_file():
        return (f"interrupted by {what}; {latest} holds the last checkpoint: the same command with --resume "
                f"continues from it (traceback in {Path(work_dir) / 'log.txt'})")
    return f"interrupted by {what} before the first checkpoint of {work_dir} (rerun the command to start again)"


def _exit(code: int) -> None:
    """Exit with ``code``; a finished multi-process (torchrun) run skips the interpreter's teardown.

    After ``destroy_process_group`` the gloo / autograd worker threads of torch's C++ runtime can still
    be alive when the interpreter unwinds, and ``std::terminate`` then aborts a rank whose run has
    finished and written everything (SIGABRT, so torchrun reports a failure).  Everything is on disk
    and the log handlers are closed at this point, so the rank leaves with ``os._exit``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
