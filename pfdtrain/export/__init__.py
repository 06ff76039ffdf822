"""Deployment: export a checkpoint (``pfdtrain export``) and run the exported file.

- :mod:`pfdtrain.export.exporter`: ``export_checkpoint`` and the CLI; the parity check
  against PyTorch on real windows.
- :mod:`pfdtrain.export.formats`: the format registry ``EXPORT_FORMATS`` and
  ``load_exported`` (used by ``pfdtrain predict --model``).
- :mod:`pfdtrain.export.onnx_format`, :mod:`pfdtrain.export.torchscript_format`: one format
  each.
- :mod:`pfdtrain.export.runtime`: the deployment metadata every format carries, and
  ``ExportedModel``.
"""
