"""``pfdtrain dashboard``: a local, read-only web app over a folder of run folders.

Pages: runs (every run with its status), run (live curves, progress, config, facts,
checkpoints, evaluation report), compare (curves overlaid, config differences, test
metrics) and benchmarks (``pfdtrain benchmark`` results). The contract it reads is
docs/dashboard.md.

Example:
    >>> from pfdtrain.dashboard.server import serve
    >>> serve(Path("runs"), host="127.0.0.1", port=8765)
"""
