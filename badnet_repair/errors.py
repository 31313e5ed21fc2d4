"""One error type for bad input, and the wrapper that turns it into a one-line message."""
from __future__ import annotations

import functools
import os
import sys
import warnings


class BadInput(Exception):
    """Input the user can fix: a file, a param or a download. The message names it."""


def debug_enabled() -> bool:
    return os.environ.get("BADNET_REPAIR_DEBUG", "") not in ("", "0")


def cli(main):
    """Run `main`; on any error print one line and exit non-zero, with no traceback.

    BadInput says what to fix; an OSError names its file; anything else is reported as
    unexpected. Set BADNET_REPAIR_DEBUG=1 to see the traceback instead.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        shown = warnings.showwarning
        if not debug_enabled():
            warnings.showwarning = _one_line_warning
        try:
            return main(*args, **kwargs)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as exc:
            if debug_enabled():
                raise
            print(f"error: {one_line(exc)}", file=sys.stderr)
            sys.exit(1)
        finally:
            warnings.showwarning = shown

    return wrapper


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    """A library's Python warning, however many lines it has, as one `warning:` line."""
    print(f"warning: {' '.join(str(message).split())[:300]}", file=sys.stderr, flush=True)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, BadInput):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or exc}"
    else:
        text = (f"unexpected {type(exc).__name__}: {exc} "
                f"(set BADNET_REPAIR_DEBUG=1 for the traceback)")
    return " ".join(text.split())  # one line, whatever the message held
