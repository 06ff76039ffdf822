"""Runs the ``pfdtrain`` CLI in this process, each epoch lasting at least ``--pace`` seconds.

    python tests/paced_job.py --pace 1.5 -- train --config x.yaml ...

A tiny training on a fast machine finishes its epochs within one dashboard poll; the
browser test needs epochs as far apart as a real training's. After each ``epoch_complete``
event is written the process waits out the rest of the pace; the training itself (real
torch, real files) is unchanged.
"""

import argparse
import sys
import time

from pfdtrain.cli import main
from pfdtrain.training.cnn_callbacks import DashboardEventWriter


def _install_pace(seconds: float) -> None:
    real_begin, real_end = DashboardEventWriter.on_epoch_begin, DashboardEventWriter.on_epoch_end

    def on_epoch_begin(self, epoch, logs=None):
        self._paced_start = time.monotonic()
        return real_begin(self, epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        real_end(self, epoch, logs)
        time.sleep(max(0.0, seconds - (time.monotonic() - self._paced_start)))

    DashboardEventWriter.on_epoch_begin = on_epoch_begin
    DashboardEventWriter.on_epoch_end = on_epoch_end


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pace", type=float, required=True, metavar="SECONDS")
    parser.add_argument("cli", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    _install_pace(args.pace)
    sys.exit(main(args.cli[1:] if args.cli[:1] == ["--"] else args.cli))
