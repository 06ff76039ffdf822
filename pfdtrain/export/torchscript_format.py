"""TorchScript export (``pfdtrain export --format torchscript``): a ``.pt`` file and its
sidecar ``.json`` metadata, for C++ (libtorch) and Python deployments without pfdtrain.

The model is traced (``torch.jit.trace``) on real windows: every pfdtrain model's forward
takes one tensor and has no data-dependent control flow that tracing would freeze, and the
export's parity check runs the traced module at two batch sizes to make sure. PyTorch has
deprecated TorchScript in favour of ``torch.export``; ONNX is the recommended format, this
one serves existing libtorch deployments (docs/spec-notes.md).

Example:
    >>> TORCHSCRIPT.write(model, torch.zeros(2, 1, 2048), Path("m.pt"))
    >>> TORCHSCRIPT.set_metadata(Path("m.pt"), props)
    >>> TORCHSCRIPT.load(Path("m.pt")).metadata["class_names"]
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Mapping, Optional

import numpy as np
import torch
from torch import nn

from pfdtrain.errors import EvaluationError
from pfdtrain.export.runtime import ExportedModel, read_deployment_metadata
from pfdtrain.utils.io import atomic_open


def sidecar_path(path: Path) -> Path:
    """``model.pt`` -> ``model.json``: the metadata file beside a TorchScript export."""
    return path.with_suffix(".json")


class TorchScriptFormat:
    """The ``torchscript`` export format: a traced module plus a sidecar JSON.

    Args:
        None.

    Example:
        >>> TorchScriptFormat().files(Path("best_model.pt"))
        [PosixPath('best_model.pt'), PosixPath('best_model.json')]
    """

    name = "torchscript"
    suffix = ".pt"
    quantizations: tuple[str, ...] = ()
    runtime = "TorchScript (torch.jit)"

    def write(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        """Trace ``model`` on ``example`` and save it to ``path``; the sidecar is written by
        :meth:`set_metadata` once the parity check passed."""
        try:
            with warnings.catch_warnings():
                # the deprecation notice and tracer warnings about Python-side shape checks
                warnings.simplefilter("ignore")
                with torch.no_grad():
                    traced = torch.jit.trace(model, (example,), check_trace=False)
                torch.jit.save(traced, str(path))
        except Exception as exc:  # tracing raises many types; all mean "cannot export"
            raise EvaluationError(f"{type(model).__name__} cannot be traced to TorchScript: "
                                  f"{str(exc).splitlines()[0][:300]}; export it with "
                                  f"--format onnx") from None

    def set_metadata(self, path: Path, props: Mapping[str, str]) -> None:
        """Write ``props`` as the sidecar JSON of ``path``."""
        with atomic_open(sidecar_path(path), "w") as handle:
            json.dump(dict(props), handle, indent=2)
            handle.write("\n")

    def quantize_plans(self, kind: str) -> list[str]:
        """None: TorchScript exports are not quantized (``quantizations`` is empty)."""
        return []

    def quantize(self, source: Path, target: Path, kind: str, plan: str) -> str:
        """Never called (no ``quantize_plans``); refuses, naming the format that quantizes."""
        raise EvaluationError("TorchScript exports are not quantized; use --format onnx "
                              "--quantize int8")

    def runner(self, path: Path, threads: Optional[int] = None
               ) -> Callable[[np.ndarray], np.ndarray]:
        """float32 ``[N, C, L]`` -> logits, by the traced module at ``path`` on the CPU."""
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # torch.jit raises RuntimeError and friends
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise EvaluationError(f"{path} is not a TorchScript module ({reason}); export it "
                                  f"again with `pfdtrain export`") from None
        module.eval()

        def run(windows: np.ndarray) -> np.ndarray:
            if threads:
                torch.set_num_threads(int(threads))
            with torch.inference_mode():
                return module(torch.from_numpy(windows)).float().numpy()

        return run

    def load(self, path: Path, threads: Optional[int] = None) -> ExportedModel:
        """An :class:`ExportedModel` of ``path`` with the metadata of its sidecar."""
        sidecar = sidecar_path(path)
        if not sidecar.is_file():
            raise EvaluationError(f"{path} has no metadata file {sidecar.name} beside it, so its "
                                  f"class names, sampling rate and window are unknown; keep the "
                                  f"two files together (pfdtrain export writes both)")
        try:
            props = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise EvaluationError(f"{sidecar}: not readable JSON ({exc}); export the model "
                                  f"again") from None
        metadata = read_deployment_metadata({str(k): str(v) for k, v in props.items()}, sidecar)
        return ExportedModel(path, metadata, self.runner(path, threads), self.name)

    def files(self, path: Path) -> list[Path]:
        """Every file an export to ``path`` writes."""
        return [path, sidecar_path(path)]


TORCHSCRIPT = TorchScriptFormat()
