"""Test doubles: a recording Kafka producer and a scripted local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple


class RecordingProducer:
    """Records ``produce`` calls; ``fail`` makes delivery reports carry an error.

    Wraps a real producer when given one, so integration tests can capture the exact bytes
    sent while still sending them.
    """

    def __init__(self, inner: Any = None, fail: Optional[str] = None) -> None:
        self.inner = inner
        self.fail = fail
        self.sent: List[Dict[str, Any]] = []
        self._pending: List[Callable[[Any, Any], None]] = []

    def produce(self, topic: str, value: bytes, key: Optional[bytes], headers: Any,
                on_delivery: Callable[[Any, Any], None]) -> None:
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        if self.inner is not None:
            self.inner.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        else:
            self._pending.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        return self._serve() if self.inner is None else self.inner.poll(timeout)

    def flush(self, timeout: float = 0) -> int:
        if self.inner is not None:
            return int(self.inner.flush(timeout))
        self._serve()
        return 0

    def _serve(self) -> int:
        pending, self._pending = self._pending, []
        for report in pending:
            report(self.fail, None)
        return len(pending)


Response = Tuple[int, Dict[str, str], bytes]


class ScriptedServer:
    """A local HTTP server answering each request with the next scripted response (the last
    one repeats) and recording the requests."""

    def __init__(self, responses: List[Response]) -> None:
        self.responses = list(responses)
        self.requests: List[Dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append({
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length),
                })
                status, headers, body = outer.responses[min(len(outer.requests), len(outer.responses)) - 1]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def json_response(status: int, body: Any, content_type: str = "application/json",
                  headers: Optional[Dict[str, str]] = None) -> Response:
    return status, {"Content-Type": content_type, **(headers or {})}, json.dumps(body).encode()
