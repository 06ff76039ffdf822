"""Physics-informed hybrid network: a raw-signal CNN fused with spectral physics features and
the operating conditions.

Example:
    >>> import torch
    >>> model = HybridPINN(num_classes=11, base_channels=8)
    >>> model(torch.randn(2, 1, 6400)).shape                       # no metadata needed
    torch.Size([2, 11])
    >>> meta = {"speed_hz": torch.tensor([58.0, 63.0]), "load": torch.tensor([0.4, 0.9]),
    ...         "temperature": torch.tensor([45.0, 75.0])}
    >>> model(torch.randn(2, 1, 6400), meta).shape
    torch.Size([2, 11])
"""

from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Mapping, Optional

import torch
from torch import nn

from pfdtrain.data.spectral import BAND_NAMES, band_energies, component_evidence
from pfdtrain.models.layers import (
    GlobalAvgPool1d,
    ModelError,
    conv_bn_relu,
    init_weights,
    model_init_kwargs,
)

__all__ = ["HybridPINN", "CONDITION_KEYS", "CONDITION_SCALING"]

#: Operating conditions in the order ``num_conditions`` takes them (metadata keys of
#: ``pfdtrain.data``): ``num_conditions=3`` uses speed, load and temperature.
CONDITION_KEYS: tuple[str, ...] = ("speed_hz", "load", "temperature", "viscosity", "sommerfeld")

#: ``key: (centre, scale)``: a condition enters the network as ``(value - centre) / scale``
#: (clamped to ±5). Centres and scales span the synthetic generator's operating ranges
#: (docs/data.md §1.1: speed 54-66 Hz, load 0.3-1.0, oil 40-80 °C, μ 0.008-0.027 Pa·s,
#: S 0.05-0.5) so that those ranges map to about ±1.
CONDITION_SCALING: dict[str, tuple[float, float]] = {
    "speed_hz": (60.0, 6.0),
    "load": (0.65, 0.35),
    "temperature": (60.0, 20.0),
    "viscosity": (0.0175, 0.01),
    "sommerfeld": (0.25, 0.2),
}

# band_energies columns enter as (value - centre) / scale: log energy fractions (-27.6 .. 0)
# around -5, log kurtosis around log 3, the AM depth around 0.1.
_FEATURE_SCALING: dict[str, tuple[float, float]] = {
    name: ((math.log(3.0), 1.0) if name.endswith("kurtosis") else
           (0.1, 0.2) if name == "am_depth" else (-5.0, 5.0))
    for name in BAND_NAMES
}
_NUM_DETECTORS = 11  # component_evidence detectors


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast support
        return contextlib.nullcontext()


class HybridPINN(nn.Module):
    """Physics-informed hybrid classifier: raw-signal CNN + spectral physics + conditions.

    Three branches, fused by concatenation into a small MLP head:

    * **CNN** on the raw window: the WDCNN-style stack of ``CNN1D`` (a 64-tap stride-8 conv,
      four 3-tap conv blocks with max pooling, global average pooling) → ``4·base_channels``.
    * **Spectral physics**: ``band_energies`` of the window (1X/2X/3X, 0.4-0.5X, 2-5 Hz
      stick-slip, 0.7-1.3 kHz impacts, 1.5-2.5 kHz bursts, broadband, AM; bands placed from
      the shaft speed estimated from the window's own spectrum) plus the 11 soft fault-
      component detectors of ``component_evidence``, computed in float32 without gradient
      (fixed, physics-defined features), through a 2-layer MLP → ``2·base_channels``.
    * **Operating conditions** (the first ``num_conditions`` of :data:`CONDITION_KEYS`),
      normalised by :data:`CONDITION_SCALING`, with a per-condition "missing" flag: a missing
      condition (no metadata, key absent, or NaN) enters as a learned value and flag 1, so
      ``model(x)`` alone works (the project contract ``model.forward(x) -> logits``) →
      ``base_channels``.

    The spectral features depend on the sampling rate (a physics-informed model learns the
    rate: ``pipeline`` passes the dataset's). Any ``L >= 256`` works; the spectral features
    are most informative for windows of ~1 s (see ``pfdtrain.data.spectral``).

    Args:
        num_classes: number of output classes (>= 2).
        in_channels: sensor channels of the input window (>= 1); the spectral branch combines
            the channels' energies.
        dropout: dropout probability in the head, in [0, 1).
        base_channels: width of the first conv; later blocks use 2x and 4x this (>= 1).
        sampling_rate: samples per second of the input windows (> 0).
        num_conditions: how many operating conditions to use, 0-5 (0: no condition branch).

    Example:
        >>> model = HybridPINN(num_classes=4, base_channels=4, sampling_rate=6400.0)
        >>> type(model)(**model.init_kwargs).init_kwargs == model.init_kwargs
        True
        >>> model.init_kwargs["sampling_rate"], model.init_kwargs["num_conditions"]
        (6400.0, 3)
    """

    def __init__(self, num_classes: int, in_channels: int = 1, dropout: float = 0.3,
                 base_channels: int = 16, sampling_rate: float = 6400.0,
                 num_conditions: int = 3) -> None:
        super().__init__()
        kwargs: dict[str, Any] = model_init_kwargs(num_classes, in_channels, dropout,
                                                   base_channels=base_channels)
        if (isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real)
                or not math.isfinite(float(sampling_rate)) or float(sampling_rate) <= 0):
            raise ModelError(f"sampling_rate must be a positive number of samples per second, "
                             f"got {sampling_rate!r}")
        if (isinstance(num_conditions, bool) or not isinstance(num_conditions, numbers.Integral)
                or not 0 <= num_conditions <= len(CONDITION_KEYS)):
            raise ModelError(f"num_conditions must be an integer in 0..{len(CONDITION_KEYS)} "
                             f"(the first of {', '.join(CONDITION_KEYS)}), got "
                             f"{num_conditions!r}")
        kwargs["sampling_rate"] = float(sampling_rate)
        kwargs["num_conditions"] = int(num_conditions)
        self.init_kwargs: dict[str, Any] = kwargs
        c = kwargs["base_channels"]
        self.sampling_rate = kwargs["sampling_rate"]
        self.condition_keys = CONDITION_KEYS[:kwargs["num_conditions"]]

        # CNN branch (CNN1D's feature extractor).
        widths = [c, 2 * c, 4 * c, 4 * c, 4 * c]
        layers: list[nn.Module] = [conv_bn_relu(kwargs["in_channels"], widths[0], 64, stride=8,
                                                padding=28), nn.MaxPool1d(2)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [conv_bn_relu(c_in, c_out, 3), nn.MaxPool1d(2, ceil_mode=True)]
        self.features = nn.Sequential(*layers)
        self.pool = GlobalAvgPool1d()

        # Spectral physics branch.
        centre, scale = zip(*(_FEATURE_SCALING[name] for name in BAND_NAMES))
        self.register_buffer("feature_centre", torch.tensor(centre, dtype=torch.float32),
                             persistent=False)
        self.register_buffer("feature_scale", torch.tensor(scale, dtype=torch.float32),
                             persistent=False)
        spectral_in = len(BAND_NAMES) + _NUM_DETECTORS
        self.spectral_mlp = nn.Sequential(nn.Linear(spectral_in, 2 * c), nn.ReLU(inplace=True),
                                          nn.Linear(2 * c, 2 * c), nn.ReLU(inplace=True))

        # Operating-condition branch (values + missing flags).
        n_cond = len(self.condition_keys)
        if n_cond:
            self.missing_value = nn.Parameter(torch.zeros(n_cond))
            self.condition_mlp: Optional[nn.Module] = nn.Sequential(
                nn.Linear(2 * n_cond, c), nn.ReLU(inplace=True))
        else:
            self.register_parameter("missing_value", None)
            self.condition_mlp = None

        fused = 4 * c + 2 * c + (c if n_cond else 0)
        self.head = nn.Sequential(nn.Linear(fused, 4 * c), nn.ReLU(inplace=True),
                                  nn.Dropout(kwargs["dropout"]),
                                  nn.Linear(4 * c, kwargs["num_classes"]))
        self.apply(init_weights)

    def spectral_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised band energies + fault-component detectors ``[B, 23]`` (float32, no grad).

        Args:
            x: input windows ``[B, in_channels, L]``.

        Example:
            >>> HybridPINN(3, base_channels=4).spectral_features(torch.randn(2, 1, 1024)).shape
            torch.Size([2, 23])
        """
        with torch.no_grad(), _no_autocast(x.device):
            raw = band_energies(x.float(), self.sampling_rate)  # speed estimated per window
            detectors = component_evidence(raw)
            scaled = ((raw - self.feature_centre) / self.feature_scale).clamp(-5.0, 5.0)
            return torch.cat([scaled, torch.stack(list(detectors.values()), dim=-1)], dim=-1)

    def condition_inputs(self, metadata: Optional[Mapping[str, Any]], batch: int,
                         device: torch.device) -> torch.Tensor:
        """``[B, 2·num_conditions]``: normalised values (learned value where missing) + flags.

        Args:
            metadata: ``{key: [B] tensor}`` or None; absent keys and NaN entries are missing.
            batch: batch size.
            device: device of the model's input.
        """
        values, missing = [], []
        for i, key in enumerate(self.condition_keys):
            raw = None if not metadata else metadata.get(key)
            if raw is None:
                v = torch.full((batch,), float("nan"), device=device)
            else:
                v = torch.as_tensor(raw).detach().to(device=device, dtype=torch.float32)
                v = v.reshape(-1).expand(batch) if v.numel() == 1 else v.reshape(batch)
            centre, scale = CONDITION_SCALING[key]
            absent = ~torch.isfinite(v)
            scaled = ((torch.nan_to_num(v) - centre) / scale).clamp(-5.0, 5.0)
            values.append(torch.where(absent, self.missing_value[i].float().expand(batch),
                                      scaled))
            missing.append(absent.float())
        return torch.stack(values + missing, dim=-1)

    def forward(self, x: torch.Tensor,
                metadata: Optional[Mapping[str, Any]] = None) -> torch.Tensor:
        """Map windows ``[B, in_channels, L]`` (and optional conditions) to logits.

        Args:
            x: float input windows, ``L >= 256``.
            metadata: optional ``{"speed_hz", "load", "temperature", ...: [B]}`` operating
                conditions (any subset; NaN = unknown). None: all conditions missing.

        Example:
            >>> HybridPINN(num_classes=3, base_channels=4)(torch.randn(1, 1, 256)).shape
            torch.Size([1, 3])
        """
        parts = [self.pool(self.features(x)), self.spectral_mlp(self.spectral_features(x))]
        if self.condition_mlp is not None:
            parts.append(self.condition_mlp(self.condition_inputs(metadata, x.shape[0],
                                                                  x.device)))
        # Under autocast the branches may differ in dtype; concatenate in the widest one.
        dtype = parts[0].dtype
        for part in parts[1:]:
            dtype = torch.promote_types(dtype, part.dtype)
        fused = torch.cat([p.to(dtype) for p in parts], dim=-1)
        return self.head(fused)
