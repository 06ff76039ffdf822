"""Hyperparameter sweeps with one command (``pfdtrain sweep SPEC``), built on Optuna.

* :mod:`~pfdtrain.sweep.spec`: the spec (base config, search space, metric, pruner and
  sampler registries :data:`PRUNERS`, :data:`SAMPLERS`), validated before any trial runs.
* :mod:`~pfdtrain.sweep.pruning`: :class:`OptunaPruningCallback`, the callback that reports
  the metric each epoch and stops a pruned trial.
* :mod:`~pfdtrain.sweep.storage`: the study's storage (journal file or RDB URL) and how the
  trial of a dead worker is failed.
* :mod:`~pfdtrain.sweep.summary`: ``best.yaml``, the table of trials, importances.
* :mod:`~pfdtrain.sweep.runner`: the worker loop and the CLI hook.
"""
