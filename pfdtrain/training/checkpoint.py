"""The one checkpoint format (guide §4): atomic writes, safe loads, verified content.

A checkpoint is a plain dict of tensors and builtins, so ``torch.load(weights_only=True)``
reads it without allowing any pickled class; RNG states are stored as tensors and lists.
Every checkpoint carries ``integrity``: a SHA-256 digest of its content (keys, values, tensor
dtypes, shapes and bytes), checked on every load. ``torch.load`` itself does not notice bytes
damaged inside the archive's tensor data; the digest does.

Example:
    >>> save_checkpoint(trainer.state_checkpoint(), run_dir / "latest_model.pth")
    >>> ckpt = load_checkpoint_file(run_dir / "latest_model.pth")
"""

from __future__ import annotations

import hashlib
import io
import math
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from pfdtrain.errors import PfdtrainError
from pfdtrain.utils.io import atomic_open
from pfdtrain.utils.logging import get_logger

logger = get_logger(__name__)

# §4.1 minimum fields; §6.1 marks the first five as required for evaluation.
REQUIRED_KEYS = ("model_state_dict", "epoch", "best_val_acc", "best_val_loss", "history")
OPTIONAL_KEYS = ("optimizer_state_dict", "scheduler_state_dict")
RECOMMENDED_KEYS = ("scheduler_state_dict", "scaler_state_dict", "random_state", "config",
                    "model_class", "timestamp")
INTEGRITY_KEY = "integrity"
DIGEST_ALGORITHM = "sha256-content-v1"


class CheckpointError(PfdtrainError):
    """A checkpoint is missing, unreadable, unsafe or does not fit; the message names the file."""


def get_checkpoint_filename(prefix: str, epoch: int, metric: float, metric_name: str) -> str:
    """Standard periodic checkpoint name (guide §4.2).

    Example:
        >>> get_checkpoint_filename("checkpoint", 25, 92.5, "val_acc")
        'checkpoint_epoch025_val_acc92.5000.pth'
    """
    return f"{prefix}_epoch{epoch:03d}_{metric_name}{metric:.4f}.pth"


def save_checkpoint(checkpoint: dict[str, Any], path: Union[str, Path]) -> Path:
    """Write atomically with a content digest: temp file in the same folder, fsync, ``os.replace``.

    The checkpoint is serialised in memory first, so a full disk surfaces as a plain
    ``OSError`` of the file write (``torch.save`` on a file would hide it in a RuntimeError),
    which :func:`pfdtrain.utils.io.atomic_path` turns into an error naming the file. A crash,
    kill or exception mid-save leaves the previous file at ``path`` untouched.
    """
    _check_loadable(checkpoint, "checkpoint")
    content = {key: value for key, value in checkpoint.items() if key != INTEGRITY_KEY}
    content[INTEGRITY_KEY] = {"algorithm": DIGEST_ALGORITHM, "digest": content_digest(content)}
    buffer = io.BytesIO()
    torch.save(content, buffer)
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getbuffer())
    return path


def content_digest(checkpoint: dict[str, Any]) -> str:
    """SHA-256 over a checkpoint's content, independent of how the archive lays it out.

    Keys are visited in sorted order; every value contributes its type, and tensors their
    dtype, shape and raw bytes, so a changed bit anywhere in the content changes the digest.
    The ``integrity`` entry itself is left out.

    Example:
        >>> a = content_digest({"epoch": 3, "w": torch.ones(2)})
        >>> a == content_digest({"w": torch.ones(2), "epoch": 3})  # order does not matter
        True
    """
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in checkpoint.items() if k != INTEGRITY_KEY})
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Add one value to ``digest`` with a type tag, so that e.g. 1, 1.0 and "1" differ."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}|".encode())
        # raw bytes of any dtype (bfloat16 included, which numpy cannot hold)
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}|".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, float):
        digest.update(f"F{'nan' if math.isnan(value) else value.hex()}|".encode())
    elif isinstance(value, str):
        encoded = value.encode("utf-8")
        digest.update(f"S{len(encoded)}|".encode())
        digest.update(encoded)
    else:  # bool, int, None, torch.dtype, torch.device, torch.Size
        digest.update(f"{type(value).__name__}:{value!r}|".encode())


_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def _check_loadable(value: Any, where: str) -> None:
    """Refuse to write what ``weights_only=True`` could not read back (fail at save, not at
    resume): only tensors, builtins and containers of them."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_loadable(key, f"{where} key")
            _check_loadable(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_loadable(item, f"{where}[{index}]")
    elif type(value) not in _PLAIN and not isinstance(value, torch.Tensor):
        raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}; "
                        f"checkpoints hold only tensors and plain values so that "
                        f"torch.load(weights_only=True) can read them")


def load_checkpoint_file(path: Union[str, Path], map_location: Any = "cpu") -> dict[str, Any]:
    """Load with ``torch.load(weights_only=True)`` and verify the content digest.

    A checkpoint written before digests existed (pfdtrain 0.1) loads with a logged note.

    Raises:
        CheckpointError: missing, truncated, corrupt or damaged file (content that does not
            match its digest), or one holding arbitrary pickled objects (refused without
            running them); names the newest good checkpoint beside it when there is one.
    """
    path = Path(path)
    try:
        checkpoint = _read_verified(path, map_location)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{_alternative(path)}") from None
    if INTEGRITY_KEY not in checkpoint:
        logger.warning(f"{path} carries no content digest (written before pfdtrain 0.2); "
                       f"loaded without an integrity check")
    return checkpoint


def _read_verified(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read and verify one file; the error names it but not its neighbours."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}.")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"refused to load {path}: it holds arbitrary pickled Python objects, which could "
                f"run code when unpickled, so it was not unpickled. pfdtrain checkpoints hold "
                f"only tensors and plain values; load only files from sources you trust with "
                f"torch.load yourself.") from None
        raise CheckpointError(f"checkpoint {path} is corrupt ({exc}).") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
                              ) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a pfdtrain checkpoint (it holds a "
                              f"{type(checkpoint).__name__}, not a dict).")
    integrity = checkpoint.get(INTEGRITY_KEY)
    if integrity is not None:
        if not isinstance(integrity, dict) or integrity.get("algorithm") != DIGEST_ALGORITHM:
            raise CheckpointError(f"checkpoint {path} has an integrity entry this pfdtrain "
                                  f"cannot check ({integrity!r}); load it with the pfdtrain "
                                  f"version that wrote it.")
        if content_digest(checkpoint) != integrity.get("digest"):
            raise CheckpointError(
                f"checkpoint {path} is damaged: its content does not match the digest recorded "
                f"when it was written (bytes inside the file changed on disk or in transfer), "
                f"so its weights cannot be trusted.")
    return checkpoint


def newest_good_checkpoint(folder: Union[str, Path], exclude: Optional[Path] = None
                           ) -> Optional[Path]:
    """The most recently written ``*.pth`` in ``folder`` that loads and verifies, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    candidates = sorted((p for p in folder.glob("*.pth") if exclude is None or p != exclude),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in candidates:
        try:
            _read_verified(candidate)
        except CheckpointError:
            continue
        return candidate
    return None


def _alternative(path: Path) -> str:
    good = newest_good_checkpoint(path.parent, exclude=path)
    return f" The newest good checkpoint beside it is {good}." if good else (
        " No other readable checkpoint is in that folder.")


def validate_checkpoint_keys(checkpoint: dict[str, Any]) -> list[str]:
    """Problems against the §6.1 expected-keys table (empty when it conforms)."""
    problems = [f"missing required key '{key}'" for key in REQUIRED_KEYS if key not in checkpoint]
    types = {"model_state_dict": dict, "epoch": int, "best_val_acc": float,
             "best_val_loss": float, "history": dict, "optimizer_state_dict": dict,
             "scheduler_state_dict": (dict, type(None))}
    for key, expected in types.items():
        if key in checkpoint and not isinstance(checkpoint[key], expected):
            problems.append(f"key '{key}' should be {expected}, is {type(checkpoint[key]).__name__}")
    history = checkpoint.get("history")
    if isinstance(history, dict):
        for key, values in history.items():
            if not isinstance(values, list) or not all(isinstance(v, float) for v in values):
                problems.append(f"history['{key}'] should be a list of floats")
    return problems


# ---------------------------------------------------------------------------------------------
# RNG states as tensors and lists (loadable with weights_only=True)
# ---------------------------------------------------------------------------------------------

def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states in weights_only-safe form."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {"bit_generator": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``capture_rng_state``; a CUDA state is ignored on a machine without CUDA."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("torch_cuda") is not None and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["torch_cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    np_state = state["numpy"]
    np.random.set_state((np_state["bit_generator"], np_state["keys"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
