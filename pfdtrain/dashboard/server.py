"""Serving the dashboard with uvicorn, and the ``pfdtrain dashboard`` subcommand.

Example:
    >>> serve(Path("runs"), host="127.0.0.1", port=8765)   # blocks until Ctrl-C
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any, Optional

from pfdtrain.errors import PfdtrainError

DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DashboardError(PfdtrainError):
    """The dashboard cannot start; the message names the problem and the fix."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or a DashboardError."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DashboardError(f"port {port} on {host} is in use (another dashboard or "
                                 f"server?); pass another one, e.g. --port {port + 1}, or "
                                 f"--port 0 for any free port") from None
        raise DashboardError(f"cannot listen on {host}:{port} ({exc.strerror}); pass --host "
                             f"127.0.0.1 (this machine only) or an address of this machine"
                             ) from None
    return sock


def allowed_hosts(host: str) -> list[str]:
    """Host headers to answer: localhost names, plus ``host`` itself; any when bound to all
    addresses (the user chose to serve the network)."""
    if host in ("0.0.0.0", "::"):
        return ["*"]
    names = ["127.0.0.1", "localhost", "[::1]"]
    if host not in names:
        names.append(f"[{host}]" if ":" in host else host)
    return names


def make_server(runs_dir: Path, sock: socket.socket, host: str,
                benchmarks_dir: Optional[Path] = None) -> Any:
    """A ``uvicorn.Server`` for the dashboard app (run it with ``server.run(sockets=[sock])``)."""
    import uvicorn

    from pfdtrain.dashboard.app import create_app

    app = create_app(runs_dir, benchmarks_dir, allowed_hosts(host))
    # access logs off: a page polling every second would flood the terminal
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(runs_dir: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          benchmarks_dir: Optional[Path] = None) -> None:
    """Serve the dashboard until Ctrl-C.

    Raises:
        DashboardError: RUNS_DIR is not a folder, or the port cannot be had.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise DashboardError(f"{runs_dir} is not a folder of run folders; pass the folder that "
                             f"`pfdtrain train` writes into (output_dir, default runs/), e.g. "
                             f"`pfdtrain dashboard runs/`")
    if benchmarks_dir is not None and not Path(benchmarks_dir).is_dir():
        raise DashboardError(f"--benchmarks {benchmarks_dir} is not a folder; pass the --out "
                             f"folder of `pfdtrain benchmark` (it holds results.json)")
    sock = bind(host, port)
    server = make_server(runs_dir, sock, host, benchmarks_dir)  # the address is ours meanwhile
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"pfdtrain dashboard: http://{shown}:{actual}/ (runs in {runs_dir}/, read-only; "
          f"Ctrl-C stops)", flush=True)
    if not _is_loopback(host):
        print(f"pfdtrain dashboard: warning: listening on {host}: anyone who can reach this "
              f"machine can read these runs", file=sys.stderr, flush=True)
    server.run(sockets=[sock])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cmd_dashboard(args: argparse.Namespace) -> int:
    serve(Path(args.runs_dir), host=args.host, port=args.port,
          benchmarks_dir=Path(args.benchmarks) if args.benchmarks else None)
    return 0


def add_dashboard_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``pfdtrain dashboard [RUNS_DIR] [--host H] [--port N] [--benchmarks DIR]``."""
    parser = subparsers.add_parser(
        "dashboard", help="live web dashboard over a folder of runs (read-only)",
        description="Serve a local web page over a folder of run folders: the runs with their "
                    "status, each run's live curves and evaluation report, runs compared side "
                    "by side, benchmark results. Read-only; binds 127.0.0.1 unless told "
                    "otherwise.")
    parser.add_argument("runs_dir", nargs="?", default="runs",
                        help="the folder holding run folders (default: runs)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0: any free port, printed)")
    parser.add_argument("--benchmarks", metavar="DIR",
                        help="also show the results.json of `pfdtrain benchmark --out DIR`")
    parser.set_defaults(func=_cmd_dashboard)
    return parser
