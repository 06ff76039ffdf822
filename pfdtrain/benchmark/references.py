"""Published figures printed beside ours where the protocol is comparable.

Each entry says what was reported, where, and how its protocol differs from ours, so the
table never suggests a like-for-like comparison that is not one.

Example:
    >>> REFERENCES["udtl-cwru"].figures["source only"]
    '≈ 93–97 %'
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Reference:
    """A published result.

    Args:
        citation: authors, title, venue, year (and DOI).
        figures: ``{method: reported accuracy}`` as the paper reports it.
        protocol: how the paper's protocol differs from the benchmark's.
    """

    citation: str
    figures: dict[str, str]
    protocol: str


REFERENCES: dict[str, Reference] = {
    "udtl-cwru": Reference(
        citation="Z. Zhao, Q. Zhang, X. Yu, C. Sun, S. Wang, R. Yan, X. Chen, \"Applications "
                 "of unsupervised deep transfer learning to intelligent fault diagnosis: a "
                 "survey and comparative study\", IEEE Trans. Instrum. Meas. 70 (2021) "
                 "3525828 (UDTL), CWRU load-transfer tasks",
        figures={"source only": "≈ 93–97 %", "CORAL / MK-MMD / DANN": "99.5–99.9 %"},
        protocol="averages over the twelve transfers between 0, 1, 2 and 3 HP, 10 classes, "
                 "1024-sample windows; the reported epoch is the best on the target's "
                 "labeled test accuracy (optimistic). Ours: the load transfers present in "
                 "--root, model chosen on the source validation loss, adaptation on a target "
                 "half that is never tested on."),
    "wdcnn": Reference(
        citation="W. Zhang, G. Peng, C. Li, Y. Chen, Z. Zhang, \"A new deep learning model for "
                 "fault diagnosis with good anti-noise and domain adaptation ability on raw "
                 "vibration signals\", Sensors 17(2) (2017) 425, doi:10.3390/s17020425",
        figures={},
        protocol="the WDCNN network (wide first-layer kernel, small kernels after) as the "
                 "field's baseline, trained here exactly like CNN1D; the paper's own "
                 "CWRU load-shift sets (1, 2, 3 HP) are not a task of this table."),
}
