"""One error type for bad input, and the wrapper that turns it into a one-line message."""
from __future__ import annotations

import functools
import os
import sys


class BadInput(Exception):
    """Input the user can fix: a file, a param or a download. The message names it."""


def debug_enabled() -> bool:
    return os.environ.get("BADNET_REPAIR_DEBUG", "") not in ("", "0")


def cli(main):
    """Run `main`; on BadInput (or a missing file) print one line and exit 1.

    Set BADNET_REPAIR_DEBUG=1 to see the traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (BadInput, FileNotFoundError) as exc:
            if debug_enabled():
                raise
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)

    return wrapper
