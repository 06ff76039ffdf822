"""What every input transform shares: the base class, its errors and exact row-wise FFTs.

An input transform turns a batch of normalised windows ``[B, L]`` into the model's input
``[B, output_length]`` (docs/data.md §6.4). It runs in torch on the whole batch, but every
row's result must be bitwise the same whether the window comes alone
(``WindowDataset.__getitem__``) or in any batch (``__getitems__``): runs are bitwise
reproducible and resume exactly only if a window's input never depends on its neighbours.
Two rules keep it so:

* FFTs run one row at a time (:func:`rfft_rows`, :func:`irfft_rows`): MKL's batched FFT of
  some lengths (e.g. 12,000 samples) gives other last bits than the same row alone.
* The element-wise steps use only correctly rounded operations (``+ - * /``, ``sqrt``,
  comparisons, gathers), never a reduction over a row or a library ``hypot``/``abs`` of a
  complex tensor, whose vectorised and scalar code paths may round differently.

Example:
    >>> x = torch.randn(4, 1024)
    >>> torch.equal(rfft_rows(x)[2], rfft_rows(x[2:3])[0])
    True
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from pfdtrain.errors import PfdtrainError


class TransformError(PfdtrainError, ValueError):
    """A transform setting that cannot work (unknown name or parameter, a band above the
    Nyquist frequency, a window too short); the message names the key and the fix. The
    data layer re-raises it as a ``ConfigError``."""


def rfft_rows(x: torch.Tensor) -> torch.Tensor:
    """``torch.fft.rfft`` of every row of ``x`` ``[B, n]``, each computed alone.

    A fresh copy of each row is transformed (an aligned buffer, as a window that comes
    alone has), so row ``i`` is bitwise ``rfft_rows(x[i:i+1])[0]`` whatever ``B``.

    Args:
        x: float32 ``[B, n]``.

    Returns:
        complex64 ``[B, n // 2 + 1]``.

    Example:
        >>> rfft_rows(torch.ones(2, 8))[:, 0]
        tensor([8.+0.j, 8.+0.j])
    """
    if x.shape[0] == 0:  # an empty batch (MKL refuses a zero-size transform)
        return torch.zeros((*x.shape[:-1], x.shape[-1] // 2 + 1), dtype=torch.complex64)
    return torch.cat([torch.fft.rfft(x[i:i + 1].clone(), dim=-1) for i in range(x.shape[0])])


def irfft_rows(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """``torch.fft.irfft(·, n)`` along the last axis, one call per window (first axis).

    Args:
        spectrum: complex64 ``[B, n // 2 + 1]``, or ``[B, m, n // 2 + 1]`` for ``m`` spectra
            of each window (one call per window: the result still depends on that window
            alone).
        n: length of the real output rows.

    Returns:
        float32 ``[B, n]`` (``[B, m, n]``).

    Example:
        >>> x = torch.randn(3, 16)
        >>> torch.allclose(irfft_rows(rfft_rows(x), 16), x, atol=1e-6)
        True
    """
    if spectrum.shape[0] == 0:  # an empty batch (MKL refuses a zero-size transform)
        return torch.zeros((*spectrum.shape[:-1], n), dtype=torch.float32)
    return torch.cat([torch.fft.irfft(spectrum[i:i + 1].clone(), n=n, dim=-1)
                      for i in range(spectrum.shape[0])])


def magnitude(spectrum: torch.Tensor) -> torch.Tensor:
    """``|spectrum|`` as ``sqrt(re * re + im * im)`` in separate, correctly rounded steps.

    ``torch.abs`` of a complex tensor calls a vectorised ``hypot`` whose last bit may
    depend on where an element falls in the SIMD loop, i.e. on the batch size.

    Example:
        >>> magnitude(torch.tensor([3 + 4j], dtype=torch.complex64))
        tensor([5.])
    """
    parts = torch.view_as_real(spectrum)
    re, im = parts[..., 0], parts[..., 1]
    return torch.sqrt(re * re + im * im)


def keep_bins(spectrum: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``spectrum`` with the bins where ``keep`` is False set to exactly zero.

    Args:
        spectrum: complex64 ``[B, K]``.
        keep: bool ``[K]`` or ``[B, K]``.

    Example:
        >>> keep_bins(torch.ones(1, 3, dtype=torch.complex64), torch.tensor([1, 0, 1]).bool())
        tensor([[1.+0.j, 0.+0.j, 1.+0.j]])
    """
    parts = torch.view_as_real(spectrum)
    # A real multiply by 0/1 (not a complex one) is exact, so no batch-dependent rounding.
    return torch.view_as_complex((parts * keep.to(parts.dtype)[..., None]).contiguous())


def bin_frequencies(n: int, sampling_rate: float) -> torch.Tensor:
    """float64 ``[n // 2 + 1]``: the frequency in Hz of each ``rfft`` bin of ``n`` samples.

    Example:
        >>> bin_frequencies(8, 8.0).tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    return torch.arange(n // 2 + 1, dtype=torch.float64) * (float(sampling_rate) / n)


class InputTransform:
    """Base class: a batch of normalised windows in, the model's input out.

    A subclass sets :attr:`name`, :attr:`what` (its physical meaning, one line: the config
    help and the README table show it), :attr:`defaults` (its parameters, each with a help
    text) and :attr:`needs_speed`, and implements :meth:`__call__` and
    :attr:`output_length`.

    Args:
        sampling_rate: samples per second of the windows.
        window_length: samples per window (``data.window_length``).
        **params: the transform's parameters (``data.transform_params``); missing ones take
            :attr:`defaults`.

    Attributes:
        params: the parameters as used, every default filled in (JSON-able; stored in the
            checkpoint's ``metadata["transform"]``).

    Raises:
        TransformError: an unknown parameter (with the known ones).

    Example:
        >>> t = TRANSFORMS["fft"](sampling_rate=12000, window_length=1024)
        >>> t(torch.randn(8, 1024)).shape, t.describe()["output_length"]
        (torch.Size([8, 513]), 513)
    """

    name: str = ""
    what: str = ""
    # parameter -> (default, help); the README table and the config help list them.
    defaults: dict[str, tuple[Any, str]] = {}
    needs_speed: bool = False

    def __init__(self, sampling_rate: float, window_length: int, **params: Any) -> None:
        check_param_names(type(self), params)
        self.sampling_rate = float(sampling_rate)
        self.window_length = int(window_length)
        self.params: dict[str, Any] = {k: params.get(k, default)
                                       for k, (default, _) in self.defaults.items()}

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """The checks that need no data (run when the config is loaded; subclasses add
        theirs). Raises TransformError naming the parameter and the fix."""
        check_param_names(cls, params)

    @property
    def output_length(self) -> int:
        """Model input samples per window."""
        return self.window_length

    def __call__(self, x: torch.Tensor, speed_hz: Optional[torch.Tensor] = None
                 ) -> torch.Tensor:
        """float32 ``[B, output_length]`` of the normalised windows ``x`` ``[B, L]``.

        Args:
            x: float32 ``[B, window_length]``.
            speed_hz: float ``[B]`` shaft speed of each window's recording, rev/s
                (transforms with :attr:`needs_speed` only).
        """
        raise NotImplementedError

    def check_speeds(self, speed_hz: Any, record_ids: Any) -> None:
        """Refuse speeds this transform cannot use with these windows (default: any)."""

    def describe(self) -> dict[str, Any]:
        """``{"name", "params", "output_length"}``: what checkpoints record
        (``metadata["transform"]``) so evaluate and predict rebuild the same transform."""
        return {"name": self.name, "params": dict(self.params),
                "output_length": int(self.output_length)}


def check_param_names(cls: type, params: Mapping[str, Any]) -> None:
    """Refuse a parameter ``cls`` does not have, naming the ones it has.

    Example:
        >>> check_param_names(TRANSFORMS["envelope"], {"band": [1, 2]})
        Traceback (most recent call last):
        TransformError: data.transform_params has 'band', which data.transform: envelope ...
    """
    if not isinstance(params, Mapping):
        raise TransformError(f"data.transform_params must be a mapping of parameter names to "
                             f"values, got {params!r}")
    for key in params:
        if key not in cls.defaults:
            known = ", ".join(cls.defaults) or "none"
            raise TransformError(f"data.transform_params has {key!r}, which data.transform: "
                                 f"{cls.name} does not take (its parameters: {known}); remove "
                                 f"it or pick the transform that takes it")
