"""Exceptions -> one message and an exit code: 1 user error, 130 interrupt, 3 bug."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator

from metarunlog.errors import MrlError

EXIT_USER = 1
EXIT_BUG = 3
EXIT_INTERRUPT = 130


class Exit(Exception):
    """Raised by the handler's body to leave with a given code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _debug() -> bool:
    return os.environ.get("MRL_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def error_handler() -> Iterator[None]:
    try:
        yield
    except Exit:
        raise
    except MrlError as e:
        if _debug():
            traceback.print_exc()
        msg = str(e).strip() or type(e).__name__
        print(f"mrl: error: {msg}", file=sys.stderr)
        raise Exit(EXIT_USER) from None
    except KeyboardInterrupt:
        if _debug():
            traceback.print_exc()
        print("mrl: interrupted", file=sys.stderr)
        raise Exit(EXIT_INTERRUPT) from None
    except BrokenPipeError:
        # `mrl ls | head`: the reader left; not an error worth a traceback.
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise Exit(0) from None
    except Exception:
        traceback.print_exc()
        print(
            "mrl: internal error (a bug in mrl): please report it with the traceback above",
            file=sys.stderr,
        )
        raise Exit(EXIT_BUG) from None
