"""Atomic writes and the errors a refused write turns into (pfdtrain.utils.io, pfdtrain.errors)."""

import errno

import pytest

from pfdtrain.errors import OutputError, output_error
from pfdtrain.utils.io import atomic_open, remove_stale_temp_files, write_json


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the disk is full"),
    (errno.EROFS, "the filesystem is read-only"),
    (errno.EACCES, "permission is denied"),
    (errno.EISDIR, "a folder has that name"),
])
def test_each_refusal_names_the_path_what_happened_and_a_fix(code, words):
    error = output_error(OSError(code, "text"), "runs/x/latest_model.pth",
                         "the previous latest_model.pth is unchanged")
    message = str(error)
    assert message.startswith(f"cannot write runs/x/latest_model.pth: {words}")
    assert "The previous latest_model.pth is unchanged." in message and "Fix: " in message
    assert error.errno == code and error.filename == "runs/x/latest_model.pth"


def test_a_folder_in_place_of_the_file_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match="a folder has that name"):
        write_json(tmp_path / "out.json", {"a": 1})
    assert list(tmp_path.glob(".*.tmp")) == []


def test_an_exception_mid_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "history.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as handle:
            handle.write("{half")
            raise RuntimeError("boom")
    assert target.read_text() == '{\n  "v": 1\n}\n'
    assert list(tmp_path.glob(".*.tmp")) == []


def test_stale_temp_files_are_found_by_their_pattern_only(tmp_path):
    (tmp_path / ".latest_model.pth.abc123.tmp").write_bytes(b"x" * 10)
    (tmp_path / "notes.tmp").write_text("a user's file, not ours")
    (tmp_path / "best_model.pth").write_bytes(b"keep")
    removed = remove_stale_temp_files(tmp_path)
    assert [p.name for p in removed] == [".latest_model.pth.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model.pth", "notes.tmp"]
