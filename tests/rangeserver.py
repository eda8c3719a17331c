"""A small HTTP server for tests: serves files from a folder on 127.0.0.1 with HEAD, ETag and
single byte-range GET requests (what GDAL's /vsicurl/ reads a Cloud-Optimized GeoTIFF with).

It can misbehave as real servers do: ``stall_after=N`` answers N range reads, then holds every
later connection open without a byte; ``fail_after=N`` answers N range reads, then HTTP 500;
``cut_after=N`` answers N range reads, then closes the connection half way through the body."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class Served:
    """The running server: its base URL and the requests it answered (method, path, status)."""

    url: str
    requests: list[tuple[str, str, int]] = field(default_factory=list)


@contextmanager
def serve(folder: Path, stall_after: int | None = None, fail_after: int | None = None,
          cut_after: int | None = None) -> Iterator[Served]:
    served = Served("")
    released = threading.Event()
    ranges = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _file(self) -> bytes | None:
            path = folder / self.path.lstrip("/").split("?")[0]
            return path.read_bytes() if path.is_file() else None

        def _head(self, data: bytes, status: int, length: int, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()[:16]}"')
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()

        def do_HEAD(self) -> None:
            data = self._file()
            if data is None:
                served.requests.append(("HEAD", self.path, 404))
                self.send_error(404)
                return
            served.requests.append(("HEAD", self.path, 200))
            self._head(data, 200, len(data), {})

        def do_GET(self) -> None:
            data = self._file()
            if data is None:
                served.requests.append(("GET", self.path, 404))
                self.send_error(404)
                return
            m = _RANGE.match(self.headers.get("Range", ""))
            if m is None:
                served.requests.append(("GET", self.path, 200))
                self._head(data, 200, len(data), {})
                self.wfile.write(data)
                return
            start = int(m.group(1) or 0)
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            part = data[start : end + 1]
            with lock:
                ranges[0] += 1
                n = ranges[0]
            if stall_after is not None and n > stall_after:
                served.requests.append(("GET", self.path, 0))
                released.wait(600)  # silent: no status line, no byte
                return
            if fail_after is not None and n > fail_after:
                served.requests.append(("GET", self.path, 500))
                self.send_error(500)
                return
            if cut_after is not None and n > cut_after:
                served.requests.append(("GET", self.path, -206))
                self._head(data, 206, len(part), {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            served.requests.append(("GET", self.path, 206))
            self._head(data, 206, len(part), {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
            self.wfile.write(part)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        released.set()
        server.shutdown()
        server.server_close()
