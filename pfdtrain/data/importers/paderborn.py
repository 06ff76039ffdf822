"""The ``paderborn`` layout: the Paderborn University (KAt) bearing data center's files.

As distributed (https://mb.uni-paderborn.de/kat/forschung/kat-datacenter/bearing-datacenter):
one folder per bearing code (``K001`` … ``K006`` healthy, ``KA…`` outer race, ``KI…`` inner
race, ``KB…`` inner and outer race), files named ``N15_M07_F10_KA04_1.mat`` (speed N09/N15 =
900/1500 rpm, load torque M01/M07 = 0.1/0.7 Nm, radial force F04/F10 = 400/1000 N, bearing
code, measurement 1–20). Each file holds one variable named like the file, a 1×1 struct
whose ``Y`` is a struct array of channels (``Name``, ``Data``, ``Raster``, ``Unit``); the
vibration signal is ``Y[Name=vibration_1].Data`` at 64 kHz. See docs/data.md §10.

Example:
    >>> import_paderborn(Path("paderborn"), Path("data/pu.h5")).class_names
    ['healthy', 'outer_race', 'inner_race', 'inner_outer_race']
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional

from pfdtrain.data.importers.core import (DEFAULT_MIN_LENGTH, ImportSummary, Layout,
                                          import_rows)
from pfdtrain.data.importers.readers import RecordingError, RecordingWarning
from pfdtrain.data.records import DataError

PADERBORN_SAMPLING_RATE = 64000.0
PADERBORN_CHANNELS: tuple[str, ...] = ("vibration_1",)
PADERBORN_LABEL_SETS: dict[str, tuple[str, ...]] = {
    "4class": ("healthy", "outer_race", "inner_race", "inner_outer_race"),
    "3class": ("healthy", "outer_race", "inner_race"),  # KB (combined) bearings left out
}
# Bearings whose damage was made by hand (EDM, drilling, engraving); every other damaged
# bearing got its damage in accelerated lifetime tests ("real").
PADERBORN_ARTIFICIAL: frozenset[str] = frozenset({
    "KA01", "KA03", "KA05", "KA06", "KA07", "KA08", "KA09",
    "KI01", "KI03", "KI05", "KI07", "KI08"})
_FILE = re.compile(r"^N(\d{2})_M(\d{2})_F(\d{2})_(K\d{3}|K[AIB]\d{2})_(\d+)\.mat$", re.IGNORECASE)
_CLASS_OF_KIND = {"0": "healthy", "A": "outer_race", "I": "inner_race",
                  "B": "inner_outer_race"}


def paderborn_file_info(name: str) -> Optional[dict]:
    """What a Paderborn file name says, or None for other names.

    Returns:
        ``{"bearing", "label" (4-class), "rpm", "torque_nm", "radial_force_n",
        "measurement", "damage_origin" ("none", "artificial" or "real")}``.

    Example:
        >>> paderborn_file_info("N15_M07_F10_KA04_1.mat")["rpm"], _["damage_origin"]
        (1500.0, 'real')
    """
    m = _FILE.match(name)
    if m is None:
        return None
    code = m.group(4).upper()
    kind = "0" if code[1].isdigit() else code[1]
    label = _CLASS_OF_KIND[kind]
    origin = ("none" if label == "healthy"
              else "artificial" if code in PADERBORN_ARTIFICIAL else "real")
    return {"bearing": code, "label": label, "rpm": int(m.group(1)) * 100.0,
            "torque_nm": int(m.group(2)) / 10.0, "radial_force_n": int(m.group(3)) * 100.0,
            "measurement": float(int(m.group(5))), "damage_origin": origin}


def paderborn_manifest(root: Path, label_set: str = "4class", channel: str = "vibration_1", *,
                       skipped: Optional[list[tuple[str, str]]] = None) -> list[dict]:
    """Manifest rows for a folder of Paderborn bearing folders (files found recursively).

    Each row: ``path`` (absolute), ``label``, ``variable``
    ``<file stem>.Y[Name=<channel>].Data``, ``sampling_rate`` 64000, ``record_id`` (the
    file stem), and the metadata ``bearing`` (code, text), ``damage_origin`` (text),
    ``rpm``, ``torque_nm``, ``radial_force_n`` and ``measurement``.

    Args:
        root: the data set's folder.
        label_set: ``"4class"`` (healthy, outer_race, inner_race, inner_outer_race) or
            ``"3class"`` (the KB bearings are skipped).
        channel: the ``Y`` channel (``vibration_1``).
        skipped: if given, ``(file, reason)`` is appended for every file left out.

    Raises:
        DataError: unknown label set or channel.
        RecordingError: ``root`` is not a folder or holds no recognised file.

    Example:
        >>> paderborn_manifest(Path("paderborn"))[0]["variable"]
        'N09_M07_F10_K001_1.Y[Name=vibration_1].Data'
    """
    if label_set not in PADERBORN_LABEL_SETS:
        raise DataError(f"unknown Paderborn label set {label_set!r}; choose one of "
                        f"{', '.join(PADERBORN_LABEL_SETS)}.")
    if channel not in PADERBORN_CHANNELS:
        raise DataError(f"unknown Paderborn channel {channel!r}; choose one of "
                        f"{', '.join(PADERBORN_CHANNELS)}.")
    root = Path(root).resolve()  # absolute: rows must not depend on the working directory
    if not root.is_dir():
        raise RecordingError(f"{root}: not a folder; --root must be the folder holding the "
                             f"Paderborn bearing folders (K001, KA04, ...).")
    classes = PADERBORN_LABEL_SETS[label_set]
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        info = paderborn_file_info(path.name)
        if info is None:
            if skipped is not None and path.suffix.lower() == ".mat":
                skipped.append((str(path), "not a Paderborn file name (like "
                                           "N15_M07_F10_KA04_1.mat)"))
            continue
        if info["label"] not in classes:
            if skipped is not None:
                skipped.append((str(path), f"{info['bearing']} ({info['label']}) is not in "
                                           f"the {label_set} label set"))
            continue
        if path.parent.name.upper() not in (info["bearing"], root.name.upper()) \
                and re.fullmatch(r"K\d{3}|K[AIB]\d{2}", path.parent.name.upper()):
            raise RecordingError(f"{path}: the file name says bearing {info['bearing']} but it "
                                 f"lies in the folder of bearing {path.parent.name}; move it "
                                 f"or fix its name.")
        rows.append({"path": str(path), "label": info["label"],
                     "variable": f"{path.stem}.Y[Name={channel}].Data",
                     "sampling_rate": PADERBORN_SAMPLING_RATE, "record_id": path.stem,
                     "bearing": info["bearing"], "damage_origin": info["damage_origin"],
                     "rpm": info["rpm"], "torque_nm": info["torque_nm"],
                     "radial_force_n": info["radial_force_n"],
                     "measurement": info["measurement"]})
    if not rows:
        raise RecordingError(f"{root}: no Paderborn files found (looked for names like "
                             f"N15_M07_F10_KA04_1.mat in any sub-folder).")
    return rows


def import_paderborn(root: Path, out: Path, *, label_set: str = "4class",
                     channel: str = "vibration_1", target_rate: Optional[float] = None,
                     skip_bad: bool = False, min_length: int = DEFAULT_MIN_LENGTH
                     ) -> ImportSummary:
    """Import the Paderborn bearing data (see :func:`paderborn_manifest`).

    Train and test on different bearings with ``data.split: group``,
    ``data.group_key: bearing`` (e.g. ``test_groups: [KA04, KI04, K001]``): windows of one
    bearing in both sides would measure recognition of that bearing, not of the damage.

    Args:
        root: the data set's folder (relative or absolute).
        out: the ``.h5`` file to write.
        label_set: ``"4class"`` or ``"3class"``.
        channel: ``"vibration_1"``.
        target_rate: resample from 64 kHz, or None.
        skip_bad: skip bad files with a warning instead of failing.
        min_length: shortest recording kept, in samples.

    Raises:
        DataError, RecordingError: as :func:`paderborn_manifest` and
            :func:`~pfdtrain.data.importers.core.import_rows`.

    Example:
        >>> import_paderborn(Path("paderborn"), Path("data/pu.h5"), target_rate=16000).records
        2560
    """
    skipped: list[tuple[str, str]] = []
    rows = paderborn_manifest(root, label_set, channel, skipped=skipped)
    for file, reason in skipped:
        warnings.warn(f"{file}: {reason}; not imported.", RecordingWarning, stacklevel=2)
    return import_rows(rows, out, base_dir=Path(root).resolve(), manifest=None,
                       target_rate=target_rate, sampling_rate=None, channel=None,
                       classes=list(PADERBORN_LABEL_SETS[label_set]), skip_bad=skip_bad,
                       min_length=min_length,
                       source=f"Paderborn University KAt bearing data, {channel}, "
                              f"{label_set} labels",
                       settings={"importer": "paderborn", "root": str(Path(root).resolve()),
                                 "label_set": label_set, "channel": channel},
                       skipped=skipped)


LAYOUT = Layout(
    name="paderborn", title="Paderborn University (KAt) bearing data",
    summary="healthy / outer race / inner race (/ inner+outer: `4class`, default); "
            "`vibration_1` at 64 kHz; bearing code, speed, torque, radial force, damage origin",
    importer=import_paderborn, label_sets=tuple(PADERBORN_LABEL_SETS),
    channels=PADERBORN_CHANNELS, docs_anchor="10-paderborn-bearing-data")
