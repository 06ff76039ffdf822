"""The dashboard web app (FastAPI): four pages and the small JSON API they poll.

Read-only: every route is a GET, nothing outside RUNS_DIR is served (run names are checked
by :meth:`RunStore.get`), and the only other file sent is the ``plotly.min.js`` shipped
inside the ``plotly`` package, so the pages work without internet access.

Pages: ``/`` (runs), ``/run?name=N``, ``/compare?runs=A&runs=B``, ``/benchmarks``.
API: ``/api/runs``, ``/api/run?name=N``, ``/api/events?name=N&after=K&generation=G``,
``/api/compare?runs=A&runs=B``, ``/api/benchmarks``.

Example:
    >>> import uvicorn
    >>> uvicorn.run(create_app(Path("runs")), host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import math
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Optional

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pfdtrain import __version__
from pfdtrain.dashboard.runs import RunNotFound, RunStore, compare

STATIC = Path(__file__).parent / "static"
#: Events per ``/api/events`` answer: a 1,000-epoch run arrives in a few round trips.
EVENTS_PAGE = 5000


def plotly_js() -> Path:
    """The ``plotly.min.js`` bundled in the ``plotly`` Python package (served locally)."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():  # pragma: no cover - a broken plotly install
        raise RuntimeError(f"{path} is missing: reinstall plotly (pip install --force-reinstall "
                           f"plotly)")
    return path


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null (a diverged loss shows as a gap)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _json(data: Any) -> JSONResponse:
    return JSONResponse(_clean(data), headers={"Cache-Control": "no-store"})


def create_app(runs_dir: Path, benchmarks_dir: Optional[Path] = None,
               allowed_hosts: Optional[list[str]] = None) -> FastAPI:
    """The dashboard over the run folders in ``runs_dir``.

    Args:
        runs_dir: RUNS_DIR, the folder holding run folders (searched a few levels deep).
        benchmarks_dir: another folder to search for ``pfdtrain benchmark``'s
            ``results.json`` files (RUNS_DIR is always searched).
        allowed_hosts: ``Host`` headers answered (against DNS rebinding: a web page that
            points its own host name at 127.0.0.1 is refused); default localhost only.

    Example:
        >>> app = create_app(Path("runs"))
    """
    store = RunStore(runs_dir)
    app = FastAPI(title="pfdtrain dashboard", version=__version__, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(TrustedHostMiddleware,
                       allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost", "[::1]"])
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def page(name: str) -> FileResponse:
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    def run_or_404(name: str) -> Any:
        try:
            return store.get(name)
        except RunNotFound:
            raise HTTPException(404, f"no run folder named {name!r} under {store.root.name}/; "
                                     f"the runs page lists them") from None

    @app.get("/", include_in_schema=False)
    def runs_page() -> FileResponse:
        return page("runs.html")

    @app.get("/run", include_in_schema=False)
    def run_page() -> FileResponse:
        return page("run.html")

    @app.get("/compare", include_in_schema=False)
    def compare_page() -> FileResponse:
        return page("compare.html")

    @app.get("/benchmarks", include_in_schema=False)
    def benchmarks_page() -> FileResponse:
        return page("benchmarks.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # none: but no 404 in the browser console

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        # 4.6 MB that never changes for an installed version: the browser keeps it.
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/runs")
    def api_runs() -> JSONResponse:
        with store.lock:
            return _json({"root": str(store.root), "runs": store.summaries()})

    @app.get("/api/run")
    def api_run(name: str) -> JSONResponse:
        with store.lock:
            return _json(run_or_404(name).detail())

    @app.get("/api/events")
    def api_events(name: str, after: Annotated[int, Query(ge=0)] = 0,
                   generation: int = -1) -> JSONResponse:
        """Events from index ``after`` on; when the file was read again from the start (a
        resume cut it back) since the client's ``generation``, all of them, with ``reset``.
        ``epoch_progress`` and ``checkpoint_saved`` events are not in the list:
        ``progress`` is the newest one of the running epoch (or null), and ``/api/run``
        lists the checkpoints with their newest ``checkpoint_saved``."""
        with store.lock:
            run = run_or_404(name)
            summary = run.summary()
            log = run.log
            reset = generation != log.generation
            start = 0 if reset else min(after, len(log.events))
            events = log.events[start:start + EVENTS_PAGE]
            return _json({"generation": log.generation, "reset": reset, "start": start,
                          "next": start + len(events),
                          "more": start + len(events) < len(log.events),
                          "events": events, "progress": log.progress, "summary": summary,
                          "bad_lines": len(log.bad_lines)})

    @app.get("/api/compare")
    def api_compare(runs: Annotated[Optional[list[str]], Query()] = None) -> JSONResponse:
        if not runs:
            raise HTTPException(400, "no runs to compare: pass ?runs=NAME&runs=OTHER (tick them "
                                     "on the runs page)")
        with store.lock:
            return _json(compare([run_or_404(name) for name in runs]))

    @app.get("/api/benchmarks")
    def api_benchmarks() -> JSONResponse:
        with store.lock:
            return _json({"results": store.benchmark_results(benchmarks_dir)})

    def warm_up() -> None:
        # Read every event file once now, so the first page a browser asks for is served
        # from memory (50 runs of 1,000 epochs: about a second of reading).
        with store.lock:
            store.summaries()

    threading.Thread(target=warm_up, name="dashboard-warm-up", daemon=True).start()
    return app
