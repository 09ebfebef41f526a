"""The `mrl` program (console script, `python -m metarunlog`, bin/mrl): a Ctrl-C while
Python still imports mrl's modules, before `main` has its handlers, ends it as every
other interrupt does (`mrl: interrupted`, exit 130), not with a KeyboardInterrupt
traceback. Only the interpreter's own start-up is left before this module runs."""

from __future__ import annotations

import contextlib
import sys

EXIT_INTERRUPT = 130  # error_handler's, not imported: importing is what may be interrupted


def run() -> int:
    try:
        from metarunlog.main import main
    except KeyboardInterrupt:
        with contextlib.suppress(OSError, ValueError):  # a closed stderr
            print("mrl: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    return main()
