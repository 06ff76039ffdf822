"""Benchmark protocols with one command (``pfdtrain benchmark SUITE``).

* :mod:`~pfdtrain.benchmark.suites`: the protocols (:data:`SUITES`), each a list of tasks.
* :mod:`~pfdtrain.benchmark.tasks`: a transfer task as two dataset files (source + target
  test half, and the target's unlabeled adaptation half).
* :mod:`~pfdtrain.benchmark.methods`: what is trained on each task (:data:`METHODS`).
* :mod:`~pfdtrain.benchmark.references`: published figures printed beside ours.
* :mod:`~pfdtrain.benchmark.runner`: the resumable loop, the progress line and the table.
"""
