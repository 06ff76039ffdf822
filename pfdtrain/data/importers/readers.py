"""File-format readers shared by every importer: MATLAB .mat (v5 and v7.3), .npy and .csv.

:func:`read_signal` reads one recording as a float64 1-D signal and says what it found
(format, variables, the chosen variable, speed and sampling rate where the file states
them). Every problem is a :class:`RecordingError` naming the file.

Example:
    >>> signal, info = read_signal(Path("cwru/97.mat"), variable="_DE_time")
    >>> signal.shape, info["variable"]
    ((243938,), 'X097_DE_time')
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import h5py
import numpy as np

from pfdtrain.data.records import DataError

SUPPORTED_EXTENSIONS: tuple[str, ...] = (".mat", ".npy", ".csv")


class RecordingError(DataError):
    """A recording or manifest row cannot be imported; the message names the file and why."""


class RecordingWarning(UserWarning):
    """A recording was skipped (``skip_bad``) or imported with a caveat."""


def is_number(text: str) -> bool:
    """True when ``text`` parses as a float (a CSV header cell that is data, not a name)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick_variable(names: Sequence[str], wanted: str, path: Path, all_names: Sequence[str]
                   ) -> str:
    """Exact name, else case-insensitive, else a unique suffix, else a unique ``_`` token.

    So ``X097_DE_time`` is found by its name, by ``_DE_time`` (the CWRU numbers inside files
    vary) and by ``DE``; a match that is not unique is an error, never a guess.
    """
    low = wanted.lower()
    stages = (
        [n for n in names if n == wanted],
        [n for n in names if n.lower() == low],
        [n for n in names if n.lower().endswith(low)],
        [n for n in names if low in n.lower().split("_")],
    )
    for matches in stages:
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RecordingError(f"{path}: variable '{wanted}' is ambiguous, it matches "
                                 f"{', '.join(sorted(matches))}; name one exactly.")
    raise RecordingError(f"{path}: variable '{wanted}' not found; available variables: "
                         f"{', '.join(sorted(all_names)) or '(none)'}.")


def _is_numeric(arr: Any) -> bool:
    return isinstance(arr, np.ndarray) and arr.dtype.kind in "fiu"


def _mat_variables(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """All variables of a MATLAB file (v5 via scipy, v7.3 via h5py) and the format name."""
    import scipy.io

    try:
        contents = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer for v7.3 (HDF5-based) files
        return mat73_variables(path), "mat-v7.3"
    except Exception as exc:  # scipy raises several types for damaged files
        if h5py.is_hdf5(str(path)):
            return mat73_variables(path), "mat-v7.3"
        raise RecordingError(f"{path}: cannot be read as a MATLAB .mat file "
                             f"({type(exc).__name__}: {exc}); check that the file is complete "
                             f"and really a .mat file.") from None
    return {k: v for k, v in contents.items() if not k.startswith("__")}, "mat-v5"


def mat73_variables(path: Path) -> dict[str, np.ndarray]:
    """Top-level variables of a MATLAB v7.3 (HDF5) file; structs (HDF5 groups) and
    non-numeric variables are listed as empty object arrays (named, never a signal)."""
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            for name, item in f.items():
                if name.startswith("#"):
                    continue  # '#refs#', '#subsystem#': MATLAB's internal storage
                if not isinstance(item, h5py.Dataset) or item.dtype.kind not in "fiu":
                    out[name] = np.zeros(0, dtype=object)  # listed, but never a signal
                    continue
                # MATLAB writes column-major: a [N, 1] column vector is stored as (1, N).
                out[name] = np.asarray(item[()]).T
    except (OSError, KeyError, ValueError, RuntimeError) as exc:  # h5py: damaged/truncated
        raise RecordingError(f"{path}: cannot be read as a MATLAB v7.3 (HDF5) file ({exc}); "
                             f"check that the file is complete (copy it again).") from None
    return out


def _channel_index(column: Union[str, int], n_channels: int, path: Path, what: str) -> int:
    if isinstance(column, str):
        if not column.strip().lstrip("-").isdigit():
            raise RecordingError(f"{path}: {what} has {n_channels} channels; select one by its "
                                 f"index 0..{n_channels - 1}, not {column!r}.")
        column = int(column)
    if not -n_channels <= int(column) < n_channels:
        raise RecordingError(f"{path}: channel {column} of {what} does not exist; it has "
                             f"{n_channels} channels (0..{n_channels - 1}).")
    return int(column)


def _to_1d(arr: np.ndarray, path: Path, column: Optional[Union[str, int]], what: str
           ) -> np.ndarray:
    """A float64 1-D signal from [N], [N, 1], [1, N] or (with ``column``) [N, C]."""
    arr = np.asarray(arr)
    if not _is_numeric(arr):
        raise RecordingError(f"{path}: {what} is not a real-valued numeric array "
                             f"(dtype {arr.dtype}).")
    if arr.ndim > 2:
        arr = np.squeeze(arr)
    if arr.ndim == 0 or arr.size == 0:
        raise RecordingError(f"{path}: {what} holds no signal (shape {arr.shape}).")
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim == 2:
        # The longer axis is time: recordings have far more samples than channels.
        if arr.shape[0] < arr.shape[1]:
            arr = arr.T
        if column is None:
            raise RecordingError(f"{path}: {what} has {arr.shape[1]} channels (shape "
                                 f"{arr.shape}); choose one with the manifest's column "
                                 f"(channel index 0..{arr.shape[1] - 1}).")
        arr = arr[:, _channel_index(column, arr.shape[1], path, what)]
    if arr.ndim != 1:
        raise RecordingError(f"{path}: {what} has shape {arr.shape}; expected a 1-D signal, "
                             f"[N, 1], [1, N] or [N, channels].")
    return np.asarray(arr, dtype=np.float64)


def _struct_fields_hint(variables: Mapping[str, Any]) -> str:
    """``"; bearing is a struct (fields gs, load, rate, sr): name a field as bearing.<field>"``
    for the v5 struct variables of a file, else ``""``."""
    hints = []
    for name in sorted(variables):
        node = _unwrap(variables[name])
        if isinstance(node, np.ndarray) and node.dtype.names:
            hints.append(f"{name} is a struct (fields {', '.join(node.dtype.names)})")
    return (f"; {'; '.join(hints)}: name the signal as <struct>.<field>, e.g. "
            f"{sorted(variables)[0]}.<field>") if hints else ""


def _stated_rate(variables: Mapping[str, Any], struct_fields: Mapping[str, float],
                 struct_where: str) -> tuple[Optional[float], Optional[str]]:
    """The sampling rate a file states, and where: a field of the struct holding the signal
    (MFPT's ``bearing.sr``) first, else a top-level scalar variable (``fs``, ``sr``, ...)."""
    for field, value in struct_fields.items():
        if field.lower() in RATE_NAMES:
            return value, f"{struct_where}.{field}"
    for name in sorted(variables):
        if name.lower() in RATE_NAMES:
            value = _scalar(variables[name])
            if value is not None:
                return value, name
    return None, None


def _read_mat(path: Path, variable: Optional[str], column: Optional[Union[str, int]]
              ) -> tuple[np.ndarray, dict]:
    variables, fmt = _mat_variables(path)
    names = sorted(variables)
    info: dict[str, Any] = {"format": fmt, "variables": names}
    struct_fields: dict[str, float] = {}
    struct_where = ""
    if is_struct_path(variable):
        steps = parse_struct_path(str(variable), path)
        if fmt == "mat-v7.3":
            value, struct_fields = _resolve_v73(path, steps, str(variable))
        else:
            value, struct_fields = _resolve_v5(variables, steps, path, str(variable))
        name = str(variable)
        struct_where = name.rpartition(".")[0]
        info["struct_fields"] = struct_fields
    else:
        signals = [n for n in names if _is_numeric(variables[n]) and variables[n].size > 1]
        if variable is not None:
            name = _pick_variable(names, str(variable), path, names)
        elif len(signals) == 1:
            name = signals[0]
        elif not signals:
            raise RecordingError(f"{path}: no numeric signal variable found; variables: "
                                 f"{', '.join(names) or '(none)'}"
                                 f"{_struct_fields_hint(variables)}.")
        else:
            raise RecordingError(f"{path}: holds {len(signals)} signal variables "
                                 f"({', '.join(signals)}); name one (a part is enough, e.g. DE "
                                 f"for X097_DE_time): `pfdtrain predict --variable DE`, "
                                 f"`pfdtrain data import --channel DE`, or a manifest's "
                                 f"variable column.")
        value = variables[name]
        node = _unwrap(value)
        if isinstance(node, np.ndarray) and node.dtype.names:
            raise RecordingError(f"{path}: variable '{name}' is a struct (fields "
                                 f"{', '.join(node.dtype.names)}); name the signal inside it, "
                                 f"e.g. {name}.{node.dtype.names[0]}.")
    info["variable"] = name
    rpm_names = [n for n in names if n.upper().endswith("RPM") and _is_numeric(variables[n])
                 and variables[n].size == 1]
    if rpm_names:
        # Prefer the RPM stored beside the chosen signal (X097RPM for X097_DE_time).
        prefix = f"{name.split('_')[0]}RPM"
        rpm_name = prefix if prefix in rpm_names else rpm_names[0]
        info["rpm"] = float(np.asarray(variables[rpm_name]).reshape(-1)[0])
    rate, rate_from = _stated_rate(variables, struct_fields, struct_where)
    if rate is not None:
        if not (np.isfinite(rate) and rate > 0):
            raise RecordingError(f"{path}: states a sampling rate of {rate:g} Hz in "
                                 f"'{rate_from}', which is not a positive number; fix the file.")
        info["sampling_rate"], info["sampling_rate_variable"] = rate, rate_from
    return _to_1d(value, path, column, f"variable '{name}'"), info


def _read_npy(path: Path, column: Optional[Union[str, int]]) -> tuple[np.ndarray, dict]:
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickle: files may come from anywhere
    except Exception as exc:
        raise RecordingError(f"{path}: cannot be read as a .npy array ({type(exc).__name__}: "
                             f"{exc}).") from None
    return _to_1d(arr, path, column, "the array"), {"format": "npy", "variables": []}


def _read_csv(path: Path, column: Optional[Union[str, int]]) -> tuple[np.ndarray, dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot be read as a text CSV file ({exc}).") from None
    if not first.strip():
        raise RecordingError(f"{path}: the CSV file is empty (no first line).")
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)  # None: whitespace
    fields = [f.strip().strip('"') for f in (first.split(delimiter) if delimiter
                                             else first.split())]
    header = not all(is_number(f) for f in fields)
    names = fields if header else []
    if column is None:
        if len(fields) != 1:
            listed = ", ".join(names) if header else f"{len(fields)} unnamed columns"
            raise RecordingError(f"{path}: has {len(fields)} columns ({listed}); name the "
                                 f"signal column in the manifest's column (name or index).")
        index, label = 0, names[0] if header else "0"
    elif isinstance(column, str) and column in names:
        index, label = names.index(column), column
    elif isinstance(column, int) or str(column).strip().isdigit():
        index, label = int(column), str(column)
        if index >= len(fields):
            raise RecordingError(f"{path}: column {index} does not exist; the file has "
                                 f"{len(fields)} columns" + (f" ({', '.join(names)})"
                                                             if header else "") + ".")
    else:
        where = (f"available columns: {', '.join(names)}" if header
                 else "the file has no header row; give the column index")
        raise RecordingError(f"{path}: column '{column}' not found; {where}.")
    try:
        signal = np.loadtxt(path, delimiter=delimiter, skiprows=1 if header else 0,
                            usecols=(index,), dtype=np.float64, ndmin=1, encoding="utf-8-sig")
    except (ValueError, IndexError) as exc:
        raise RecordingError(f"{path}: column {label} cannot be read as numbers ({exc}); "
                             f"every row after the header must hold a number there.") from None
    return signal, {"format": "csv", "variables": names, "column": label}


def read_signal(path: Path, variable: Optional[str] = None,
                column: Optional[Union[str, int]] = None) -> tuple[np.ndarray, dict]:
    """Read one recording as a float64 1-D signal.

    Formats by extension: ``.mat`` (MATLAB v5 through ``scipy.io.loadmat``; v7.3, which is
    HDF5, through h5py when scipy declines it), ``.npy`` (numpy, no pickles) and ``.csv``
    (numbers separated by ``,``, ``;``, tab or spaces; an optional header row).

    Args:
        path: the recording.
        variable: ``.mat``: the variable holding the signal: its exact name, or a suffix or
            ``_``-separated part matching exactly one variable (``_DE_time`` or ``DE`` find
            ``X097_DE_time``). Not needed when the file holds one signal variable. A
            struct path selects a field inside MATLAB structs: ``bearing.gs``, ``a.b.c``,
            and a struct-array element by a field's value, ``Y[Name=vibration_1].Data``
            (or by index from 0, ``Y[6].Data``); a path that does not exist names the
            fields where it stopped.
        column: ``.csv``: the column, by header name or index (not needed for a single
            column). ``.mat``/``.npy``: the channel index of a 2-D [N, C] array.

    Returns:
        ``(signal, info)``: float64 [N] (``[N, 1]``/``[1, N]`` are squeezed) and a dict with
        ``format``, ``variables`` (names in the file; CSV header names), the chosen
        ``variable``/``column``, ``rpm`` where the file states it (CWRU ``X097RPM``) and
        ``sampling_rate`` (with ``sampling_rate_variable``) where it states its rate: a
        field of the struct holding the signal (MFPT ``bearing.sr``) or a top-level scalar
        named ``fs``, ``sr``, ``sampling_rate``, ... (:data:`RATE_NAMES`).

    Raises:
        RecordingError: naming the file and the problem: missing or unreadable file, unknown
            extension, missing or ambiguous variable (listing the available ones), a 2-D
            array without a channel, an empty signal, or NaN/inf samples (how many and
            where the first is).

    Example:
        >>> signal, info = read_signal(Path("cwru/97.mat"), variable="_DE_time")
        >>> signal.shape, info["variable"], info["rpm"]
        ((243938,), 'X097_DE_time', 1796.0)
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: file does not exist (or is not a file).")
    ext = path.suffix.lower()
    if ext == ".mat":
        signal, info = _read_mat(path, variable, column)
    elif ext == ".npy":
        signal, info = _read_npy(path, column)
    elif ext == ".csv":
        signal, info = _read_csv(path, variable if column is None else column)
    else:
        raise RecordingError(f"{path}: unknown file type '{ext or '(no extension)'}'; "
                             f"supported: .mat (MATLAB v5 and v7.3), .npy, .csv.")
    if signal.size == 0:
        raise RecordingError(f"{path}: the signal is empty (0 samples).")
    bad = ~np.isfinite(signal)
    if bad.any():
        first = int(np.argmax(bad))
        raise RecordingError(f"{path}: the signal contains {int(bad.sum())} NaN/inf value(s) "
                             f"(first at sample {first} of {signal.size}); clean or "
                             f"interpolate them, or leave the file out.")
    return signal, info


# --------------------------------------------------------------------------------------------
# MATLAB struct paths: bearing.gs, a.b.c, Y[Name=vibration_1].Data
# --------------------------------------------------------------------------------------------

# Variables or struct fields that state a recording's sampling rate (case-insensitive).
RATE_NAMES: tuple[str, ...] = ("fs", "sr", "sampling_rate", "samplingrate", "sample_rate",
                               "samplerate", "sampling_frequency", "fsample")


def is_struct_path(variable: Optional[str]) -> bool:
    """True when ``variable`` names a field inside a MATLAB struct (``bearing.gs``,
    ``Y[Name=vibration_1].Data``) rather than a top-level variable."""
    return variable is not None and ("." in variable or "[" in variable)


def parse_struct_path(text: str, path: Path) -> list[tuple[str, Optional[str]]]:
    """``"a.Y[Name=v1].Data"`` → ``[("a", None), ("Y", "Name=v1"), ("Data", None)]``.

    A step is a variable or field name, optionally followed by one selector in brackets:
    ``[field=value]`` (the struct-array element whose ``field`` reads ``value``) or
    ``[i]`` (element ``i``, counted from 0).

    Raises:
        RecordingError: an empty step, unbalanced brackets or a step that is not
            ``name`` / ``name[selector]``.
    """
    steps, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if depth not in (0, 1):
            break
        if ch == "." and depth == 0:
            steps.append(current)
            current = ""
        else:
            current += ch
    steps.append(current)
    out: list[tuple[str, Optional[str]]] = []
    for step in steps:
        m = re.fullmatch(r"\s*([^\[\].\s]+)\s*(?:\[\s*([^\[\]]+?)\s*\])?\s*", step)
        if depth != 0 or m is None:
            raise RecordingError(f"{path}: struct path '{text}' is malformed at '{step}'; write "
                                 f"it like bearing.gs, a.b.c or Y[Name=vibration_1].Data.")
        out.append((m.group(1), m.group(2)))
    return out


def _text(value: Any) -> str:
    """A MATLAB char array (as scipy or h5py give it) as a Python string."""
    value = _unwrap(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return "".join(str(v) for v in value.reshape(-1))
        if value.dtype.kind in "iu" and value.size:  # v7.3 stores char as uint16 codes
            return "".join(chr(int(c)) for c in value.reshape(-1))
        return ""
    return str(value)


def _unwrap(value: Any) -> Any:
    """Cells and object wrappers of one element → their content (scipy nests struct fields
    in 1×1 object arrays)."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _select(elements: list[Any], fields: Sequence[str], selector: str, field_of: Any,
            where: str, path: Path, text: str) -> int:
    """Index of the struct-array element ``selector`` picks (``i`` or ``field=value``)."""
    if selector.strip().lstrip("-").isdigit():
        i = int(selector)
        if not 0 <= i < len(elements):
            raise RecordingError(f"{path}: struct path '{text}': '{where}' has {len(elements)} "
                                 f"elements (0..{len(elements) - 1}); [{i}] does not exist.")
        return i
    key, sep, wanted = selector.partition("=")
    key, wanted = key.strip(), wanted.strip().strip("'\"")
    if not sep or key not in fields:
        raise RecordingError(f"{path}: struct path '{text}': selector [{selector}] of '{where}' "
                             f"must be [field=value] with one of its fields "
                             f"({', '.join(fields)}) or an index [i].")
    values = [_text(field_of(e, key)) for e in elements]
    if wanted not in values:
        raise RecordingError(f"{path}: struct path '{text}': no element of '{where}' has "
                             f"{key} = '{wanted}'; its {key} values: {', '.join(values)}.")
    return values.index(wanted)


def _scalar(value: Any) -> Optional[float]:
    value = _unwrap(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.size == 1:
        return float(value.reshape(-1)[0])
    if isinstance(value, (int, float, np.number)):
        return float(value)
    return None


def _first_variable(first: str, names: Sequence[str], path: Path, text: str) -> str:
    """The top-level variable a struct path starts at; ``*`` is the file's only variable
    (Paderborn files name theirs after the file, so a renamed file still reads)."""
    if first == "*":
        if len(names) != 1:
            raise RecordingError(f"{path}: struct path '{text}' starts at '*', the file's only "
                                 f"variable, but it has {len(names)}: "
                                 f"{', '.join(names) or '(none)'}; name one instead of '*'.")
        return names[0]
    if first not in names:
        raise RecordingError(f"{path}: struct path '{text}': variable '{first}' not found; "
                             f"available variables: {', '.join(names) or '(none)'}.")
    return first


def _resolve_v5(variables: Mapping[str, Any], steps: list[tuple[str, Optional[str]]],
                path: Path, text: str) -> tuple[Any, dict[str, float]]:
    """Follow ``steps`` through scipy's struct arrays. Returns the value at the end and the
    numeric scalar fields of the struct that holds it (where a rate may be stated)."""
    names = sorted(variables)
    first = _first_variable(steps[0][0], names, path, text)
    value, where = variables[first], first
    siblings: dict[str, float] = {}
    for k, (name, sel) in enumerate(steps):
        if k > 0:
            node = _unwrap(value)
            fields = node.dtype.names if isinstance(node, np.ndarray) else None
            if not fields:
                kind = (f"a {node.dtype} array of shape {node.shape}"
                        if isinstance(node, np.ndarray) else type(node).__name__)
                raise RecordingError(f"{path}: struct path '{text}': '{where}' is not a struct "
                                     f"(it is {kind}), so it has no field '{name}'.")
            if node.size != 1:
                raise RecordingError(f"{path}: struct path '{text}': '{where}' is a struct "
                                     f"array of {node.size} elements; select one, e.g. "
                                     f"{where}[{fields[0]}=...] or {where}[0].")
            if name not in fields:
                raise RecordingError(f"{path}: struct path '{text}': field '{name}' not found "
                                     f"in '{where}'; its fields: {', '.join(fields)}.")
            element = node.reshape(-1)[0]
            siblings = {f: s for f in fields if (s := _scalar(element[f])) is not None}
            value, where = element[name], f"{where}.{name}"
        if sel is not None:
            node = _unwrap(value)
            fields = node.dtype.names if isinstance(node, np.ndarray) else None
            if not fields:
                raise RecordingError(f"{path}: struct path '{text}': '{where}' is not a struct "
                                     f"array, so [{sel}] selects nothing.")
            elements = list(node.reshape(-1))
            i = _select(elements, fields, sel, lambda e, f: e[f], where, path, text)
            value, where = node.reshape(-1)[i:i + 1], f"{where}[{sel}]"
    end = _unwrap(value)
    if isinstance(end, np.ndarray) and end.dtype.names:
        raise RecordingError(f"{path}: struct path '{text}' ends at '{where}', a struct (fields "
                             f"{', '.join(end.dtype.names)}); add the field that holds the "
                             f"signal, e.g. {text}.{end.dtype.names[0]}.")
    return end, siblings


def _resolve_v73(path: Path, steps: list[tuple[str, Optional[str]]], text: str
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """The same walk through a v7.3 (HDF5) file: structs are groups, struct arrays are
    groups whose fields hold one object reference per element."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot be read as a MATLAB v7.3 (HDF5) file ({exc}).") \
            from None
    with f:
        def fields_of(group: h5py.Group) -> list[str]:
            return sorted(n for n in group.keys() if not n.startswith("#"))

        first = _first_variable(steps[0][0], fields_of(f), path, text)
        node: Any = f[first]
        index: Optional[int] = None  # the selected element of a struct array (refs)
        where = first
        siblings: dict[str, float] = {}

        def field(group: h5py.Group, name: str, i: Optional[int]) -> Any:
            item = group[name]
            if i is not None:  # struct array: one reference per element
                return f[item[()].reshape(-1)[i]]
            return item

        for k, (name, sel) in enumerate(steps):
            if k > 0:
                if not isinstance(node, h5py.Group):
                    raise RecordingError(f"{path}: struct path '{text}': '{where}' is not a "
                                         f"struct, so it has no field '{name}'.")
                fields = fields_of(node)
                if name not in fields:
                    raise RecordingError(f"{path}: struct path '{text}': field '{name}' not "
                                         f"found in '{where}'; its fields: {', '.join(fields)}.")
                for other in fields:
                    item = field(node, other, index)
                    if isinstance(item, h5py.Dataset) and item.dtype.kind in "fiu" \
                            and item.size == 1 and item.attrs.get("MATLAB_class") != b"char":
                        siblings[other] = float(np.asarray(item[()]).reshape(-1)[0])
                node, where = field(node, name, index), f"{where}.{name}"
                index = None
            if sel is not None:
                if not isinstance(node, h5py.Group):
                    raise RecordingError(f"{path}: struct path '{text}': '{where}' is not a "
                                         f"struct array, so [{sel}] selects nothing.")
                fields = fields_of(node)
                n = int(node[fields[0]].size) if fields else 0
                array = node  # bound now: the lambda runs inside _select, in this step
                index = _select(list(range(n)), fields, sel,
                                lambda i, key, array=array: f[array[key][()].reshape(-1)[i]][()],
                                where, path, text)
                where = f"{where}[{sel}]"
        if index is not None or not isinstance(node, h5py.Dataset):
            raise RecordingError(f"{path}: struct path '{text}' ends at '{where}', a struct; "
                                 f"add the field that holds the signal.")
        # MATLAB writes column-major: a [N, 1] column vector is stored as (1, N).
        return np.asarray(node[()]).T, siblings
