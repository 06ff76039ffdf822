"""Split strategies (record, time, group), the generalised leakage check, unsplit files and
build_dataloaders on imported data."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pfdtrain.config.training_config import TrainingConfig
from pfdtrain.data import (
    DataError,
    DataLeakageError,
    RecordSplit,
    WindowDataset,
    build_dataloaders,
    check_no_leakage,
    read_dataset,
    write_dataset,
)
from pfdtrain.data.importers.manifest import import_manifest
from pfdtrain.data.splits import SplitWarning, make_splits, time_boundaries

N, WINDOW = 4000, 256
CLASSES = ["healthy", "inner", "outer"]


def make_pool(n: int = N) -> RecordSplit:
    """3 classes x 4 loads; sample j of recording i holds i * 10000 + j (exact in float32),
    so every window tells where it came from."""
    records, labels, ids, loads = [], [], [], []
    for i in range(12):
        records.append(i * 10000 + np.arange(n, dtype=np.float64))
        labels.append(i % 3)
        loads.append(float(i // 3))
        ids.append(f"rec-{i:02d}")
    rpm = [1797.0 - 20 * x for x in loads]
    return RecordSplit.from_records(records, labels, ids, metadata={"load": loads, "rpm": rpm})


def data_config(**data: object):
    return TrainingConfig.from_dict({"data": {"window_length": WINDOW, "window_stride": WINDOW,
                                              **data}}).data


# ---------------------------------------------------------------- record
def test_record_split_keeps_recordings_whole_and_stratifies() -> None:
    pool = make_pool()
    splits, info = make_splits(pool, data_config(split="record", val_fraction=0.25,
                                                 test_fraction=0.25), WINDOW)
    ids = [set(s.record_ids) for s in splits.values()]
    assert set.union(*ids) == set(pool.record_ids) and sum(map(len, ids)) == 12
    for split in splits.values():  # 4 recordings per class → 2 train, 1 val, 1 test each
        assert sorted(np.bincount(split.labels, minlength=3).tolist()) in ([1, 1, 1], [2, 2, 2])
        assert split.sources == split.record_ids  # whole recordings
    assert info["strategy"] == "record" and info["counts"] == {"train": 6, "val": 3, "test": 3}
    check_no_leakage(splits, strategy="record")
    again, _ = make_splits(pool, data_config(split="record", val_fraction=0.25,
                                             test_fraction=0.25), WINDOW)
    assert again["test"].record_ids == splits["test"].record_ids  # deterministic
    np.testing.assert_array_equal(splits["test"].record(0),
                                  pool.record(pool.record_ids.index(splits["test"].record_ids[0])))
    json.dumps(info)


# ---------------------------------------------------------------- time
def test_time_boundaries() -> None:
    assert time_boundaries(10000, 0.15, 0.15, gap=1000) == {
        "train": (0, 6500), "val": (7500, 8000), "test": (9000, 10000)}
    assert time_boundaries(10000, 0.0, 0.2, gap=0) == {"train": (0, 8000), "test": (8000, 10000)}


def test_time_split_parts_keep_the_gap_and_windows_never_cross() -> None:
    pool = make_pool()
    splits, info = make_splits(pool, data_config(split="time", val_fraction=0.2,
                                                 test_fraction=0.2), WINDOW)
    assert info["split_gap"] == WINDOW  # default: one window
    assert info["counts"] == {"train": 12, "val": 12, "test": 12}
    assert splits["train"].record_ids[0] == "rec-00#train"
    used: dict[str, list[tuple[str, int, int]]] = {}
    for name, split in splits.items():
        for k, (src, (start, end)) in enumerate(zip(split.sources, split.ranges)):
            i = int(src.split("-")[1])
            # the piece holds exactly samples [start, end) of its source
            np.testing.assert_array_equal(split.record(k), i * 10000 + np.arange(start, end))
            used.setdefault(src, []).append((name, int(start), int(end)))
        ds = WindowDataset.from_split(split, WINDOW, 64, normalization="none")
        windows = np.stack([ds[j][0][0].numpy() for j in range(len(ds))])
        assert np.all(np.diff(windows, axis=1) == 1)  # contiguous: never across a boundary
    for parts in used.values():
        parts.sort(key=lambda p: p[1])
        assert [p[0] for p in parts] == ["train", "val", "test"]
        for (_, _, end), (_, start, _) in zip(parts, parts[1:]):
            assert start - end == WINDOW  # neighbouring parts never share samples
    check_no_leakage(splits, strategy="time", min_gap=WINDOW)
    assert info["ranges"]["test"][0] == ["rec-00", 3328, 4000]
    json.dumps(info)


def test_time_split_drops_short_parts_and_refuses_a_short_train_part() -> None:
    pool = make_pool()
    with pytest.warns(SplitWarning, match=r"dropped 12 val/test part\(s\).*val part of rec-00"):
        splits, info = make_splits(pool, data_config(split="time", val_fraction=0.05,
                                                     test_fraction=0.2, split_gap=100), WINDOW)
    assert len(splits["val"]) == 0 and len(splits["test"]) == 12
    assert info["dropped"][0] == {"record": "rec-00", "part": "val", "samples": 100}
    with pytest.raises(DataError, match=r"training part of recording rec-00 \(4000 samples\)"
                                        r".*shorter than one window of 3000"):
        make_splits(pool, data_config(split="time"), 3000)


# ---------------------------------------------------------------- group
def test_group_split_holds_out_values() -> None:
    pool = make_pool()
    splits, info = make_splits(pool, data_config(split="group", group_key="load",
                                                 test_groups=[3], val_groups=[2]), WINDOW)
    assert set(splits["test"].metadata["load"]) == {3.0}
    assert set(splits["val"].metadata["load"]) == {2.0}
    assert set(splits["train"].metadata["load"]) == {0.0, 1.0}
    assert info["test_groups"] == [3.0] and info["counts"] == {"train": 6, "val": 3, "test": 3}
    check_no_leakage(splits, strategy="group")
    # no val_groups: val_fraction of the remaining (training-group) records, by record
    splits, info = make_splits(pool, data_config(split="group", test_groups=[0],
                                                 val_fraction=0.34), WINDOW)
    assert set(splits["test"].metadata["load"]) == {0.0}
    assert 0.0 not in set(splits["val"].metadata["load"]) and len(splits["val"]) == 3
    assert len(splits["train"]) == 6 and info["val_fraction"] == 0.34
    json.dumps(info)


@pytest.mark.parametrize("settings, message", [
    ({"group_key": "speed"}, r"column 'speed'.*does not exist; available columns: load, rpm"),
    ({"test_groups": [7]}, r"test_groups \[7\] match\(es\) no record.*'load'.*"
                           r"\[0, 1, 2, 3\]"),
    ({"test_groups": [7, 8], "val_groups": [1]}, r"test_groups \[7, 8\] match\(es\) no"),
    ({"test_groups": [0, 1], "val_groups": [2, 3]}, r"no training records.*'load'"),
    ({"test_groups": []}, r"needs held-out values.*\[0, 1, 2, 3\]"),
    ({"test_groups": [1], "val_groups": [1]}, r"in both data.test_groups and data.val_groups"),
    ({"test_groups": ["heavy"]}, r"'heavy' is not a number"),
])
def test_group_split_errors_name_the_column_and_values(settings: dict, message: str) -> None:
    cfg = data_config(split="group", **{"test_groups": [3], **settings})
    with pytest.raises(DataError, match=message):
        make_splits(make_pool(), cfg, WINDOW)


# ---------------------------------------------------------------- leakage check
def test_leakage_check_catches_overlapping_and_too_close_time_pieces() -> None:
    splits, _ = make_splits(make_pool(), data_config(split="time", val_fraction=0.2,
                                                     test_fraction=0.2), WINDOW)
    check_no_leakage(splits)  # the default rules accept disjoint pieces
    with pytest.raises(DataLeakageError, match=r"12 source recording\(s\).*rec-00 \(train "
                                               r"\[0, 2272\) / val \[2528, 3072\): only 256 "
                                               r"samples apart, the gap must be >= 300"):
        check_no_leakage(splits, min_gap=300)
    with pytest.raises(DataLeakageError, match=r"12 source recording\(s\).*rec-00 "
                                               r"\(test/train/val\).*one split"):
        check_no_leakage(splits, strategy="record")
    bad = splits["test"]
    bad.ranges[0] = [2000, 2000 + bad.lengths[0]]  # deliberately overlapping the train piece
    with pytest.raises(DataLeakageError, match=r"1 source recording\(s\) leak.*rec-00 \(train "
                                               r"\[0, 2272\) / test \[2000, 2672\): overlap\)"):
        check_no_leakage(splits, strategy="time")
    # the original record-id API keeps working
    with pytest.raises(DataLeakageError, match=r"1 record id\(s\) appear in more than one split"):
        check_no_leakage({"train": ["a", "b"], "val": ["c"], "test": ["b"]})
    check_no_leakage({"train": ["a"], "test": ["b"]})


def test_pieces_round_trip_through_a_file_and_are_checked_there(tmp_path: Path) -> None:
    splits, _ = make_splits(make_pool(), data_config(split="time", val_fraction=0.2,
                                                     test_fraction=0.2), WINDOW)
    path = tmp_path / "pieces.h5"
    write_dataset(path, splits, class_names=CLASSES, sampling_rate=1000.0, source="t",
                  split_strategy="time")
    data = read_dataset(path)
    assert data.split_strategy == "time"
    assert data.splits["val"].sources == splits["val"].sources
    np.testing.assert_array_equal(data.splits["val"].ranges, splits["val"].ranges)
    check_no_leakage(path)
    with h5py.File(path, "r+") as f:
        f["test/ranges"][0] = [0, int(f["test/ranges"][0, 1] - f["test/ranges"][0, 0])]
    with pytest.raises(DataLeakageError, match=r"rec-00 \(train \[0, 2272\) / test \[0, 672\)"):
        check_no_leakage(path)


# ---------------------------------------------------------------- unsplit files and loaders
def test_unsplit_file_round_trip(tmp_path: Path) -> None:
    pool = make_pool()
    path = tmp_path / "unsplit.h5"
    digest = write_dataset(path, {"records": pool}, class_names=CLASSES, sampling_rate=1000.0,
                           source="rig", split_strategy="none")
    with h5py.File(path, "r") as f:
        assert f.attrs["split_strategy"] == "none" and sorted(f) == ["records"]
        assert "sources" not in f["records"]  # whole recordings: no provenance datasets
    data = read_dataset(path)
    assert list(data.splits) == ["records"] and data.content_hash == digest
    assert data.splits["records"].record_ids == pool.record_ids
    with h5py.File(path, "r+") as f:
        f["records/signals"][0] = 99.0
    with pytest.raises(DataError, match="content hash mismatch"):
        read_dataset(path)
    with pytest.raises(DataError, match=r"not stored with split_strategy 'record'"):
        write_dataset(tmp_path / "x.h5", {"records": pool}, class_names=CLASSES,
                      sampling_rate=1000.0, source="rig", split_strategy="record")
    write_dataset(tmp_path / "copy.h5", data.splits, class_names=CLASSES, sampling_rate=1000.0,
                  source="copy")  # an unsplit read round-trips without naming the strategy
    assert read_dataset(tmp_path / "copy.h5").split_strategy == "none"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 .npy recordings (3 classes x 4 loads) imported through a manifest."""
    folder = tmp_path_factory.mktemp("imported")
    pool = make_pool()
    lines = ["path,label,sampling_rate,load,rpm"]
    for i in range(12):
        np.save(folder / f"rec-{i:02d}.npy", pool.record(i).astype(np.float64))
        lines.append(f"rec-{i:02d}.npy,{CLASSES[i % 3]},1000,{i // 3},{1797 - 20 * (i // 3)}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    import_manifest(folder / "manifest.csv", folder / "mine.h5")
    return folder / "mine.h5"


@pytest.mark.parametrize("strategy, extra, counts", [
    ("record", {"val_fraction": 0.25, "test_fraction": 0.25}, (6, 3, 3)),
    ("time", {"val_fraction": 0.2, "test_fraction": 0.2}, (12, 12, 12)),
    ("group", {"test_groups": [3], "val_groups": [2]}, (6, 3, 3)),
])
def test_build_dataloaders_on_an_imported_file(imported: Path, tmp_path: Path, strategy: str,
                                               extra: dict, counts: tuple) -> None:
    cfg = TrainingConfig.from_dict({"data": {
        "source": str(imported), "cache_dir": str(tmp_path), "window_length": WINDOW,
        "window_stride": WINDOW, "batch_size": 4, "split": strategy, **extra}})
    bundle = build_dataloaders(cfg, with_metadata=True)
    info = bundle.split_info
    assert info["strategy"] == strategy and info["stored"] is False
    assert tuple(info["counts"][k] for k in ("train", "val", "test")) == counts
    assert bundle.class_names == CLASSES and bundle.sampling_rate == 1000.0
    assert bundle.content_hash == read_dataset(imported).content_hash
    json.dumps(info)
    x, y, meta = next(iter(bundle.train_loader))
    assert x.shape == (4, 1, WINDOW) and set(meta) == {"load", "rpm"}
    ids = {name: set(info["ids"][name]) for name in ("train", "val", "test")}
    if strategy == "time":
        assert all(i.endswith("#train") for i in ids["train"])
    else:
        assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["val"])
    if strategy == "group":
        loads = bundle.test_loader.dataset.metadata["load"]
        assert set(loads.tolist()) == {3.0}


def test_synthetic_data_is_pooled_and_resplit_for_time(tmp_path: Path) -> None:
    cfg = TrainingConfig.from_dict({
        "data": {"cache_dir": str(tmp_path), "window_length": 400, "window_stride": 400,
                 "split": "time", "val_fraction": 0.25, "test_fraction": 0.25,
                 "split_gap": 100},
        "synthetic": {"records_per_class": 4, "record_duration": 0.5, "seed": 9}})
    bundle = build_dataloaders(cfg)
    info = bundle.split_info
    assert info["strategy"] == "time" and info["resplit_from"] == "record"
    assert info["counts"] == {"train": 44, "val": 44, "test": 44}  # 3200 samples each
    stored = build_dataloaders(TrainingConfig.from_dict({**cfg.to_dict(), "data": {
        **cfg.to_dict()["data"], "split": "record"}}))
    assert stored.split_info["stored"] is True and stored.split_info["strategy"] == "record"


# ---------------------------------------------------------------- issue 10 §3
def test_group_split_by_a_text_key_such_as_the_bearing_code() -> None:
    pool = make_pool()
    pool.metadata["bearing"] = np.array([f"KA{i % 6:02d}" for i in range(12)], dtype=object)
    splits, info = make_splits(pool, data_config(split="group", group_key="bearing",
                                                 test_groups=["KA01", "KA02"]), WINDOW)
    assert sorted(set(splits["test"].metadata["bearing"])) == ["KA01", "KA02"]
    assert not {"KA01", "KA02"} & set(splits["train"].metadata["bearing"])
    assert not {"KA01", "KA02"} & set(splits["val"].metadata["bearing"])
    assert info["test_groups"] == ["KA01", "KA02"] and info["group_key"] == "bearing"
    check_no_leakage(splits, strategy="group", time_sliced=info.get("time_sliced", ()))
    with pytest.raises(DataError, match=r"test_groups \[KB99\] match\(es\) no record.*"
                                        r"available values: \[KA00, KA01"):
        make_splits(pool, data_config(split="group", group_key="bearing", test_groups=["KB99"]),
                    WINDOW)
    json.dumps(info)


def test_group_values_missing_from_the_data_warn_and_the_rest_are_held_out() -> None:
    pool = make_pool()
    keep = [i for i, load in enumerate(pool.metadata["load"]) if load < 2]  # loads 0 and 1
    with pytest.warns(SplitWarning, match=r"value\(s\) \[2, 3\] match no record of 'load'"):
        splits, info = make_splits(pool.subset(keep), data_config(
            split="group", group_key="load", test_groups=[1, 2, 3]), WINDOW)
    assert set(splits["test"].metadata["load"]) == {1.0}


def test_validation_is_sliced_in_time_when_training_has_one_recording_per_class() -> None:
    """CWRU's cross-load protocol: one recording per class at the training load leaves no
    record-level validation; validation becomes the end of each training recording."""
    pool = make_pool()
    cfg = data_config(split="group", group_key="load", test_groups=[1, 2, 3],
                      val_fraction=0.15)
    splits, info = make_splits(pool, cfg, WINDOW)
    assert info["validation"] == "time_slice" and info["time_sliced"] == ["train", "val"]
    assert info["counts"] == {"train": 3, "val": 3, "test": 9}
    assert info["split_gap"] == WINDOW
    for piece, (src, start, end) in zip(splits["val"].record_ids, info["ranges"]["val"]):
        assert piece == f"{src}#val" and end == N
        train_end = dict((s, e) for s, _, e in info["ranges"]["train"])[src]
        assert start - train_end >= WINDOW  # the time split's gap
        assert pool.metadata["load"][pool.record_ids.index(src)] == 0.0
    # Each window still comes from where it says (sample j of recording i holds i*10000+j).
    first = splits["val"].record(0)
    src, start, _ = info["ranges"]["val"][0]
    assert first[0] == pool.record_ids.index(src) * 10000 + start
    check_no_leakage(splits, strategy="group", min_gap=WINDOW, time_sliced=("train", "val"))
    # The gate still refuses what the rule forbids: a test recording in training, or pieces
    # closer than the gap.
    with pytest.raises(DataLeakageError, match="each recording must stay in one split|only"):
        check_no_leakage({"train": splits["train"], "test": splits["val"]}, strategy="group",
                         min_gap=WINDOW, time_sliced=("train", "val"))
    with pytest.raises(DataLeakageError, match=r"only \d+ samples apart"):
        check_no_leakage(splits, strategy="group", min_gap=WINDOW * 10,
                         time_sliced=("train", "val"))
    json.dumps(info)


def test_record_split_with_one_recording_per_class_validates_on_time_slices() -> None:
    pool = make_pool().subset([0, 1, 2])  # one recording per class
    splits, info = make_splits(pool, data_config(split="record", val_fraction=0.2,
                                                 test_fraction=0.2), WINDOW)
    assert info["validation"] == "time_slice" and len(splits["val"]) == 3
    assert len(splits["test"]) == 0
    splits, info = make_splits(pool, data_config(split="record", val_fraction=0.0,
                                                 test_fraction=0.2), WINDOW)
    assert info["validation"] == "none" and len(splits["val"]) == 0


def test_build_dataloaders_records_and_logs_the_validation_source(tmp_path: Path, caplog) -> None:
    pool = make_pool()
    write_dataset(tmp_path / "d.h5", {"records": pool}, class_names=CLASSES,
                  sampling_rate=1000.0, source="test", split_strategy="none")
    config = TrainingConfig.from_dict({"data": {
        "source": str(tmp_path / "d.h5"), "window_length": WINDOW, "window_stride": WINDOW,
        "split": "group", "group_key": "load", "test_groups": [1, 2, 3]}})
    import logging
    with caplog.at_level(logging.INFO, logger="pfdtrain"):
        bundle = build_dataloaders(config)
    assert bundle.split_info["validation"] == "time_slice"
    assert bundle.val_loader is not None and len(bundle.val_loader.dataset) > 0
    assert "validation: the end of every training recording" in caplog.text
    # A split warning goes to the log and into the split record (checkpoints, metrics).
    config.data.test_groups = [1, 2, 3, 9]
    with caplog.at_level(logging.INFO, logger="pfdtrain"):
        bundle = build_dataloaders(config)
    assert "value(s) [9] match no record of 'load'" in caplog.text
    assert "[9] match no record" in bundle.split_info["warnings"][0]


@pytest.mark.parametrize("val_fraction, advice", [(0.0, "set data.val_fraction > 0"),
                                                  (0.15, "data.val_fraction is 0.15 but")])
def test_no_validation_error_never_advises_a_value_already_set(val_fraction, advice) -> None:
    import torch

    from pfdtrain.config.training_config import ConfigError
    from pfdtrain.pipeline import build_callbacks

    config = TrainingConfig.from_dict({"data": {"val_fraction": val_fraction}})
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError) as info:
        build_callbacks(config, model, torch.optim.SGD(model.parameters(), lr=0.1), None,
                        has_validation=False)
    assert advice in str(info.value)
    if val_fraction > 0:
        assert "set data.val_fraction" not in str(info.value)
