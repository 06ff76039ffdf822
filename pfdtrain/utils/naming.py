"""Name checks shared by the registries (models, losses): unknown names and arguments fail
with the valid choices and the closest one."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Iterable, Sequence


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest candidate, or ``""``.

    Example:
        >>> did_you_mean("focla", ["ce", "focal"])
        " Did you mean 'focal'?"
    """
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def keyword_parameters(target: Callable[..., Any]) -> list[str]:
    """Keyword arguments a function or class constructor accepts, in declaration order."""
    function = target.__init__ if isinstance(target, type) else target
    params = list(inspect.signature(function).parameters.values())
    if isinstance(target, type):
        params = params[1:]  # drop `self`
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_keywords(given: Iterable[str], accepted: Sequence[str], owner: str, noun: str,
                   error: type[Exception]) -> None:
    """Raise ``error`` naming the first unknown keyword, the valid ones and the closest.

    Example:
        >>> check_keywords(["smoothng"], ["smoothing"], "loss 'label_smoothing'", "argument",
        ...                ValueError)
        Traceback (most recent call last):
        ValueError: unknown argument 'smoothng' for loss 'label_smoothing'; valid arguments: \
smoothing. Did you mean 'smoothing'?
    """
    for key in given:
        if key not in accepted:
            raise error(f"unknown {noun} {key!r} for {owner}; valid {noun}s: "
                        f"{', '.join(accepted)}." + did_you_mean(key, accepted))
