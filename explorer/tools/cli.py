"""What every console script shares: a user's mistake is answered with one line and exit status 2, never a
traceback (argparse already does so for its own flags)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

# the mistakes a user can make: a path that is not there, a value or a file we refuse (with our message)
USER_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ValueError)
TRACEBACK_ENV = "EXPLORER_TRACEBACK"  # set to 1 for the whole traceback instead of the one line


def one_line_errors(main: Callable) -> Callable:
    """Wrap a console script's ``main(argv)``: a USER_ERRORS exception becomes 'PROG: error: MESSAGE' on stderr
    and exit status 2 (the message on one line; set EXPLORER_TRACEBACK=1 for the traceback)."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None):
        try:
            return main(argv)
        except USER_ERRORS as err:
            if os.environ.get(TRACEBACK_ENV) == "1":
                raise
            print(f"{_prog(main)}: error: {_message(err)}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped


def _prog(main: Callable) -> str:
    """The console script's name, from its module (explorer.tools.train_geo -> explorer-train-geo)."""
    module = main.__module__.rsplit(".", 1)[-1]
    return "python app.py" if module in ("app", "__main__") else "explorer-" + module.replace("_", "-")


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or type(err).__name__
