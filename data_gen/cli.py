"""The ``--help`` formatter of the data scripts: ``(default: X)`` only where X tells the reader something.

argparse's :class:`~argparse.ArgumentDefaultsHelpFormatter` appends ``(default: %(default)s)`` to every
option with a help text, which prints ``(default: None)`` for required options (``--data-path``) and
for options whose default is worked out at run time (``--layout``: inferred from the joint count), and
``(default: False)`` for plain flags.  :class:`DefaultsHelpFormatter` leaves the default out for a
required option, a ``None`` default, a ``store_true`` / ``store_false`` flag, and a help text that
already says its default in words (``default: ...``).
"""
from __future__ import annotations

import argparse

__all__ = ["DefaultsHelpFormatter"]


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.required or action.default is None or action.default is argparse.SUPPRESS
                or isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
                or "default:" in text or "%(default)" in text):
            return text
        return super()._get_help_string(action)

