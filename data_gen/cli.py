"""Shared command-line pieces of the data scripts: the ``--help`` formatter, the input-error exit and a
count type for argparse (:func:`positive_int`: frames, persons, workers, batch sizes, character limits, --limit).

:class:`DefaultsHelpFormatter` prints ``(default: X)`` only where X tells the reader something.

argparse's :class:`~argparse.ArgumentDefaultsHelpFormatter` appends ``(default: %(default)s)`` to every
option with a help text, which prints ``(default: None)`` for required options (``--data-path``) and
for options whose default is worked out at run time (``--layout``: inferred from the joint count), and
``(default: False)`` for plain flags.  :class:`DefaultsHelpFormatter` leaves the default out for a
required option, a ``None`` default, a ``store_true`` / ``store_false`` flag, and a help text that
already says its default in words (``default: ...``).
"""
from __future__ import annotations

import argparse
import logging
from typing import Callable

__all__ = ["DefaultsHelpFormatter", "exit_code_of", "positive_int"]


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.required or action.default is None or action.default is argparse.SUPPRESS
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
                or "default:" in text or "%(default)" in text):
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """argparse ``type=`` for a count that must be at least 1 (``--max-frames 0`` would write arrays of no
    frames that only fail later, in the feeder)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def exit_code_of(main: Callable[[], int]) -> int:
    """Run a data script's ``main()``; an input error ends it with one ``ERROR`` line and exit code 1.

    Input errors are ``OSError`` (a missing file, weights or video) and ``ValueError`` (a malformed or
    mismatched input), whose messages name the file, as the gendata scripts report them; with
    ``--log-level DEBUG`` the traceback is logged too.  Anything else propagates with its traceback.
    """
    try:
        return main()
    except (OSError, ValueError) as exc:
        log = logging.getLogger("data_gen")
        log.debug("traceback of the error below", exc_info=True)
        log.error("%s", exc)
        return 1
