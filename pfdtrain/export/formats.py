"""The export formats (``pfdtrain export --format NAME``): one module each, one entry here.

A format has ``name``, ``suffix``, ``quantizations`` (the ``--quantize`` kinds it offers),
``runtime`` (what runs it) and ``write`` / ``set_metadata`` / ``runner`` / ``load`` /
``files``; see :class:`~pfdtrain.export.onnx_format.OnnxFormat`. The CLI's choices and the
README's table come from :data:`EXPORT_FORMATS`.

Example:
    >>> model = load_exported("runs/x/export/best_model.onnx")
    >>> model.format, model.metadata["window_length"]
    ('onnx', 2048)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from pfdtrain.errors import EvaluationError
from pfdtrain.export.onnx_format import ONNX
from pfdtrain.export.runtime import ExportedModel
from pfdtrain.export.torchscript_format import TORCHSCRIPT

EXPORT_FORMATS: dict[str, Any] = {fmt.name: fmt for fmt in (ONNX, TORCHSCRIPT)}


def format_for_file(path: Union[str, Path]) -> str:
    """The export format a file's suffix names.

    Raises:
        EvaluationError: a suffix no format writes.

    Example:
        >>> format_for_file("best_model.int8.onnx")
        'onnx'
    """
    suffix = Path(path).suffix.lower()
    for name, fmt in EXPORT_FORMATS.items():
        if suffix == fmt.suffix:
            return name
    known = ", ".join(f"{fmt.suffix} ({name})" for name, fmt in EXPORT_FORMATS.items())
    raise EvaluationError(f"{path}: not an exported model (the suffix {suffix or '(none)'} is "
                          f"none of {known}); give the file `pfdtrain export` wrote, or a "
                          f"checkpoint (.pth) as the first argument of predict")


def load_exported(path: Union[str, Path], threads: Optional[int] = None) -> ExportedModel:
    """Load a file written by ``pfdtrain export`` with its metadata, by its suffix.

    Args:
        path: ``.onnx`` (ONNX Runtime) or ``.pt`` (TorchScript, with its ``.json`` sidecar).
        threads: intra-op threads of the runtime (default: the runtime's choice).

    Raises:
        EvaluationError: a missing file, an unknown suffix, or a file without pfdtrain's
            deployment metadata.

    Example:
        >>> load_exported("runs/x/export/best_model.onnx").metadata["model_class"]
        'CNN1D'
    """
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"exported model {path} does not exist; export one with `pfdtrain "
                              f"export runs/<name>/checkpoints/best_model.pth`")
    return EXPORT_FORMATS[format_for_file(path)].load(path, threads)


def formats_markdown() -> str:
    """The README's table of export formats, from :data:`EXPORT_FORMATS`."""
    rows = ["| `--format` | file | runs on | `--quantize` |", "| --- | --- | --- | --- |"]
    for name, fmt in EXPORT_FORMATS.items():
        files = " + ".join(f"`{p.name}`" for p in fmt.files(Path("best_model" + fmt.suffix)))
        rows.append(f"| `{name}` | {files} | {fmt.runtime} | "
                    f"{', '.join(f'`{q}`' for q in fmt.quantizations) or '—'} |")
    return "\n".join(rows)
