"""Runs the ``pfdtrain`` CLI in this process and SIGKILLs it at a chosen moment of a save.

    python tests/fault_job.py --kill-before-replace NAME:N -- train --config x.yaml ...

``--kill-before-replace latest_model.pth:2`` kills the process the 2nd time a finished temp
file is about to be renamed onto ``latest_model.pth``: the temp file is complete on disk,
the old checkpoint is still in place, and the epoch's ``epoch_complete`` event is already
written (events come before checkpoints in the guide's order). Nothing else is changed.
"""

import argparse
import os
import signal
import sys

from pfdtrain.cli import main


def _install_kill_hook(name: str, nth: int) -> None:
    real_replace = os.replace
    seen = {"count": 0}

    def replace(src, dst, *args, **kwargs):
        if os.fspath(dst).endswith(name):
            seen["count"] += 1
            if seen["count"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-before-replace", required=True, metavar="NAME:N")
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    target, count = args.kill_before_replace.rsplit(":", 1)
    _install_kill_hook(target, int(count))
    sys.exit(main(args.cli[1:] if args.cli[:1] == ["--"] else args.cli))
