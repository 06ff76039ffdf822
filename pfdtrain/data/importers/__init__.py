"""Importers: recordings in their native layouts → one unsplit pfdtrain dataset file.

``manifest`` (a CSV with one row per recording) works for any data; the public bearing
datasets import directly from their folders through the registry :data:`LAYOUTS`. A new
layout is one new module defining a :class:`~pfdtrain.data.importers.core.Layout` named
``LAYOUT`` plus one entry below; the command line (``--layout`` choices, help) and the
README's layout table are derived from :data:`LAYOUTS`.

Example:
    >>> LAYOUTS["cwru"].run(Path("CWRU/12k_DE"), Path("data/cwru.h5")).records
    40
"""

from __future__ import annotations

from pfdtrain.data.importers import cwru, mfpt, paderborn
from pfdtrain.data.importers.core import Layout

# name -> layout; insertion order is the order of help texts and the README table.
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    cwru.LAYOUT,
    mfpt.LAYOUT,
    paderborn.LAYOUT,
)}

MANIFEST_LAYOUT = "manifest"  # the --layout default: not a folder layout, see manifest.py


def layouts_markdown() -> str:
    """The README's table of folder layouts, generated from :data:`LAYOUTS`.

    Example:
        >>> print(layouts_markdown().splitlines()[0])
        | `--layout` | dataset | what is imported | details |
    """
    lines = ["| `--layout` | dataset | what is imported | details |",
             "| --- | --- | --- | --- |",
             f"| `{MANIFEST_LAYOUT}` (default) | your own recordings, one CSV row each | "
             f"any labels, `.mat`/`.npy`/`.csv`, metadata columns | "
             f"[docs/data.md §7](docs/data.md#7-importing-recordings) |"]
    for layout in LAYOUTS.values():
        lines.append(f"| `{layout.name}` | {layout.title} | {layout.summary} | "
                     f"[docs/data.md](docs/data.md#{layout.docs_anchor}) |")
    return "\n".join(lines)
