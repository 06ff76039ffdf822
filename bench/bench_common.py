"""What every benchmark here records: the machine and its load, and the results file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch


def machine_info() -> dict:
    """CPU count, versions, torch threads and the load average when the benchmark starts (the
    development machine is shared, so the load says how much of it the figures had)."""
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def write_results(out: str, results: dict) -> None:
    """Add the load average at the end, write ``results`` as JSON to ``out`` and print it."""
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
