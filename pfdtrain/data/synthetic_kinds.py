"""The registry of built-in synthetic data families (``synthetic.kind``).

One place lists the kinds: the config takes its ``synthetic.kind`` choices and the default
sampling rate of each kind from :data:`SYNTHETIC_KINDS`, and the synthetic cache dispatches
on it. Generator modules are named by strings and imported only when asked for, so the
config does not import numpy/scipy generators (and there is no import cycle: the
generators import the config).

Example:
    >>> list(SYNTHETIC_KINDS)
    ['journal', 'rolling_element']
    >>> SYNTHETIC_KINDS["rolling_element"].sampling_rate
    12000
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType


@dataclasses.dataclass(frozen=True)
class SyntheticKind:
    """One synthetic data family.

    Args:
        module: the generator module (``generate_records``, ``class_names``,
            ``GENERATOR_VERSION``, ``METADATA_FIELDS``, ``num_records``).
        sampling_rate: the kind's default rate in Hz (``synthetic.sampling_rate: null``).
        what: one line for help texts.

    Example:
        >>> SyntheticKind("pfdtrain.data.synthetic", 6400, "journal bearing").sampling_rate
        6400
    """

    module: str
    sampling_rate: int
    what: str


# name -> kind; insertion order is the order of help texts; the first is the default.
SYNTHETIC_KINDS: dict[str, SyntheticKind] = {
    "journal": SyntheticKind("pfdtrain.data.synthetic", 6400,
                             "hydrodynamic journal bearing, 11 classes; 6400 Hz keeps its "
                             "1.5-2.5 kHz cavitation bursts"),
    "rolling_element": SyntheticKind("pfdtrain.data.rolling_element", 12000,
                                     "rolling-element bearing (normal, inner race, outer race, "
                                     "ball); 12 kHz, as CWRU, keeps its 3-4 kHz resonances"),
}


def generator_module(kind: str) -> ModuleType:
    """The generator module of ``kind``.

    Raises:
        KeyError: ``kind`` is not registered (the message lists the registered kinds).
    """
    if kind not in SYNTHETIC_KINDS:
        raise KeyError(f"unknown synthetic kind {kind!r}; registered: {', '.join(SYNTHETIC_KINDS)}")
    return importlib.import_module(SYNTHETIC_KINDS[kind].module)
