"""Classification metrics against hand-computed values."""

import numpy as np
import pytest

from pfdtrain.evaluation.metrics import classification_report


def test_report_counts_and_macro_f1_include_predicted_but_absent_classes():
    report = classification_report(np.array([0, 0, 1]), np.array([0, 2, 1]), ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert report["accuracy"] == pytest.approx(200 / 3)
    # F1: a = 2/3 (P 1, R 1/2), b = 1, c = 0 (predicted once, never true): mean over all three
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert report["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})


def test_classes_neither_true_nor_predicted_do_not_count():
    report = classification_report(np.array([0, 1]), np.array([0, 1]), ["a", "b", "unused"])
    assert report["macro_f1"] == 1.0 and report["accuracy"] == 100.0
