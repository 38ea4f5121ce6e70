"""Serve a published asv report (or any report folder) on the loopback interface only.

asv's page fetches its JSON, so it does not work from ``file://``; ``asv preview`` binds
0.0.0.0 and so exposes the machine. ``serve(directory, port)`` binds ``127.0.0.1`` and serves
until interrupted; ``odebench serve`` is its command line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from odebench.errors import InvalidInputError
from odebench.report.asv_html import log_scale_benchmarks

__all__ = ["HOST", "make_server", "serve", "urls"]

#: The only interface served on.
HOST = "127.0.0.1"


def urls(directory: Path, port: int) -> list[str]:
    """The page's address, then the log-scale addresses of its error benchmarks (asv)."""
    base = f"http://{HOST}:{port}/"
    return [base, *(f"{base}#{name}?y-axis-scale=log" for name in log_scale_benchmarks(directory))]


def make_server(directory: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server of the files under ``directory`` on ``127.0.0.1:port`` (port 0: any free
    one), not yet serving. Raises ``InvalidInputError`` when ``directory`` has no index.html."""
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise InvalidInputError(
            f"directory {directory} has no index.html: record and publish the asv report first "
            "(`nox -s bench`), or pass --dir with a folder that holds one")
    if not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be in 0..65535, got {port}")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
    return ThreadingHTTPServer((HOST, port), handler)


def serve(directory: Path, port: int, announce: Callable[[str], None] = print) -> None:
    """Serve ``directory`` on ``127.0.0.1:port`` until interrupted (Ctrl-C)."""
    with make_server(directory, port) as server:
        port = server.server_address[1]
        lines = urls(directory, port)
        announce(f"serving {directory} on {lines[0]} (loopback only; Ctrl-C stops)")
        for line in lines[1:]:
            announce(f"  log scale: {line}")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            announce("stopped")
