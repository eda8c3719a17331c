"""What went wrong with a remote scene, in words: GDAL reports a failed network read as "Read
failed" or as a file "not recognized as being in a supported file format", never the HTTP
status or the network error behind it. One ranged request of our own asks the server, with a
bound on how long it may take, and says what it answered."""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

__all__ = ["PROBE_TIMEOUT_S", "probe"]

#: How long the probe waits for a server before calling it silent.
PROBE_TIMEOUT_S = 10.0


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Ask an ``http(s)://`` server for the first byte of ``url``; what went wrong, or ``None``
    when it answered normally (the failure was then in the middle of a transfer). Other schemes
    (``s3://``: credentials we do not hold) are not probed."""
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            answer.read(1)
    except urllib.error.HTTPError as exc:
        return f"the server answered HTTP {exc.code} {exc.reason}".rstrip()
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            return f"the server did not answer within {timeout_s:g} s (timed out)"
        return f"cannot reach the server ({reason})"
    except TimeoutError:
        return f"the server stopped answering (timed out after {timeout_s:g} s)"
    except (http.client.HTTPException, OSError) as exc:
        return f"the connection failed ({type(exc).__name__}: {exc})"
    return None
