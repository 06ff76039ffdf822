"""The benchmark's methods: what is trained on each task, as config overrides.

Every method shares the suite's training settings (window, epochs, augmentation, model
selection by the source validation loss) and changes only what its name says, so the table
compares like with like. The domain-adaptation methods come from the domain-loss registry
(:data:`pfdtrain.training.domain_losses.DOMAIN_LOSSES`): a new domain loss is a new method
here without an edit.

Example:
    >>> list(METHODS)[:2]
    ['cnn1d', 'wdcnn']
    >>> METHODS["coral"].needs_target
    True
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from pfdtrain.training.domain_losses import DOMAIN_LOSSES


@dataclasses.dataclass(frozen=True)
class Method:
    """One row of the benchmark table.

    Args:
        what: one line for the table and ``--help``.
        overrides: config overrides (``key=value``) on top of the suite's settings.
        needs_target: uses the task's unlabeled target half (domain adaptation).
        physics: uses the suite's physics term (``physics.term`` and its settings).
        reference: key of :data:`pfdtrain.benchmark.references.REFERENCES` cited beside a
            table that has this method, or None.
    """

    what: str
    overrides: tuple[str, ...]
    needs_target: bool = False
    physics: bool = False
    reference: Optional[str] = None


METHODS: dict[str, Method] = {
    "cnn1d": Method("CNN1D (ours), source data only", ("model.name=cnn1d",)),
    "wdcnn": Method("WDCNN (Zhang et al., Sensors 2017), source data only",
                    ("model.name=wdcnn",), reference="wdcnn"),
    **{name: Method(f"CNN1D + {name.upper()} domain adaptation ({what}; unlabeled target "
                    f"half)", ("model.name=cnn1d", "trainer=domain_adaptation",
                               f"domain.method={name}"), needs_target=True)
       for name, (_, what) in DOMAIN_LOSSES.items()},
    "pinn": Method("CNN1D + the data's physics loss (trainer: pinn)",
                   ("model.name=cnn1d", "trainer=pinn"), physics=True),
}
