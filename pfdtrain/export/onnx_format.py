"""ONNX export (``pfdtrain export --format onnx``), run by ONNX Runtime.

The graph comes from ``torch.onnx.export(dynamo=True)`` (the ``torch.export`` based
exporter; the TorchScript-based one is deprecated) with a dynamic batch axis. pfdtrain's
deployment metadata goes into the model's metadata properties, where any ONNX tool shows
them. ``--quantize int8`` is ONNX Runtime's dynamic quantization: int8 weights, activations
quantized per batch at run time, no calibration data needed.

Example:
    >>> ONNX.write(model, torch.zeros(1, 1, 2048), Path("m.onnx"))
    >>> ONNX.set_metadata(Path("m.onnx"), props)
    >>> ONNX.load(Path("m.onnx")).logits(windows)
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

import numpy as np
import torch
from torch import nn

from pfdtrain.errors import EvaluationError
from pfdtrain.export.runtime import (INPUT_NAME, OUTPUT_NAME, ExportedModel,
                                     read_deployment_metadata)

#: ``--quantize int8`` plans, tried in order until the predicted class agrees with PyTorch's
#: often enough: the weights of every operator (convolutions too: the smallest and fastest
#: file), then those of the linear and recurrent layers only. A weakly separated model can
#: lose the agreement to quantized convolutions, whose activations ONNX Runtime quantizes
#: with one scale per batch (the README's default synthetic model: 99.2 % with every
#: operator, 99.9 % with the linear layers only).
INT8_PLANS: dict[str, Optional[tuple[str, ...]]] = {
    "every operator": None,
    "linear and recurrent layers only": ("MatMul", "Gemm", "LSTM", "GRU"),
}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs its steps and optional-package notes (torchvision ops) at
    warning level; a user sees pfdtrain's summary instead. Real failures still raise."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export",
                                                    "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(None):
                yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _root_cause(exc: BaseException) -> str:
    """The innermost message of an exporter error chain, on one line (the operator that
    has no ONNX equivalent, rather than the exporter's generic advice)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


class OnnxFormat:
    """The ``onnx`` export format: one ``.onnx`` file, metadata as model properties.

    Args:
        None.

    Example:
        >>> OnnxFormat().write(model, example, Path("m.onnx"))
    """

    name = "onnx"
    suffix = ".onnx"
    quantizations = ("int8",)
    runtime = "ONNX Runtime"

    def write(self, model: nn.Module, example: torch.Tensor, path: Path) -> None:
        """Export ``model`` (traced on ``example`` ``[B, C, L]``) to ``path``; its metadata
        is set by :meth:`set_metadata` once the parity check passed.

        Raises:
            EvaluationError: an operator without an ONNX equivalent (the message names it).
        """
        import onnx

        try:
            with _quiet_exporter():
                program = torch.onnx.export(
                    model, (example,), dynamo=True, input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME], verbose=False,
                    dynamic_shapes=({0: torch.export.Dim("batch")},))
        except Exception as exc:  # the exporter raises many types; all mean "cannot export"
            raise EvaluationError(
                f"{type(model).__name__} cannot be exported to ONNX: {_root_cause(exc)}. "
                f"Export it with --format torchscript instead, or train a model whose "
                f"operators ONNX has (cnn1d, wdcnn, resnet18_1d, cnn_lstm)") from None
        onnx.save_model(program.model_proto, str(path))

    def set_metadata(self, path: Path, props: Mapping[str, str]) -> None:
        """Replace the pfdtrain metadata properties of the file at ``path``."""
        import onnx

        proto = onnx.load_model(str(path))
        kept = {p.key: p.value for p in proto.metadata_props if p.key not in props}
        onnx.helper.set_model_props(proto, {**kept, **props})
        proto.doc_string = ("pfdtrain fault classifier: input 'windows' float32 [batch, "
                            "channels, length] (normalised, transformed windows), output "
                            "'logits' [batch, classes]; see the metadata properties")
        onnx.save_model(proto, str(path))

    def quantize_plans(self, kind: str) -> list[str]:
        """The ways to quantize as ``kind``, most compressed first (:data:`INT8_PLANS`)."""
        return list(INT8_PLANS)

    def quantize(self, source: Path, target: Path, kind: str, plan: str) -> str:
        """Write ``source`` quantized as ``kind`` (``int8``) by ``plan`` to ``target``;
        returns a description for the metadata.

        The model is pre-processed first (shape inference, graph optimisation), as ONNX
        Runtime recommends before quantizing. Weights are int8 per output channel.
        """
        from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

        operators = INT8_PLANS[plan]
        with tempfile.TemporaryDirectory(prefix="pfdtrain-quant-") as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            with _quiet_exporter():
                quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
                quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8,
                                 per_channel=True,
                                 **({} if operators is None
                                    else {"op_types_to_quantize": list(operators)}))
        return f"int8 dynamic, {plan} (ONNX Runtime quantize_dynamic, per-channel weights)"

    def runner(self, path: Path, threads: Optional[int] = None
               ) -> Callable[[np.ndarray], np.ndarray]:
        """float32 ``[N, C, L]`` -> logits, by an ONNX Runtime CPU session of ``path``."""
        return self._session(path, threads)[1]

    def load(self, path: Path, threads: Optional[int] = None) -> ExportedModel:
        """An :class:`ExportedModel` of ``path`` with the metadata of its properties."""
        session, run = self._session(path, threads)
        metadata = read_deployment_metadata(dict(session.get_modelmeta().custom_metadata_map),
                                            path)
        return ExportedModel(path, metadata, run, self.name)

    @staticmethod
    def _session(path: Path, threads: Optional[int]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's notes are not the user's business
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise EvaluationError(f"{path} is not a model ONNX Runtime can load "
                                  f"({str(exc).splitlines()[0][:300]}); export it again with "
                                  f"`pfdtrain export`") from None
        input_name = session.get_inputs()[0].name

        def run(windows: np.ndarray) -> np.ndarray:
            return session.run(None, {input_name: windows})[0]

        return session, run

    def files(self, path: Path) -> list[Path]:
        """Every file an export to ``path`` writes."""
        return [path]


ONNX = OnnxFormat()
