"""A real HTTP receiver on 127.0.0.1 for Apprise's `json://` notifications, in a thread of the test.

It records each POSTed JSON body (Apprise's `{"title", "message", "type", ...}`). `hang=True`
makes it accept and read each request, then answer nothing until it is closed: a service
that hangs. `json_url()` is the Apprise URL that reaches it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.ports import free_port


class Receiver:
    def __init__(self, *, hang: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.hang = hang
        self.closing = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if receiver.hang:
                    receiver.closing.wait(30)
                    return
                with receiver._lock:
                    receiver.messages.append(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def json_url(self, path: str = "hook", **options: str) -> str:
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"json://127.0.0.1:{self.port}/{path}" + (f"?{query}" if query else "")

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def titles(self) -> list[str]:
        with self._lock:
            return [str(message.get("title")) for message in self.messages]

    def wait_for(self, condition: Callable[[list[str]], bool], *, what: str, deadline: float = 30.0) -> list[str]:
        """Poll until condition(titles received) holds; return the titles, or fail naming what was awaited."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            titles = self.titles()
            if condition(titles):
                return titles
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; received: {self.titles()}")

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def receiving(*, hang: bool = False) -> Iterator[Receiver]:
    receiver = Receiver(hang=hang)
    try:
        yield receiver
    finally:
        receiver.close()


def port_nobody_listens_on() -> int:
    """Return a loopback port that refuses connections (bound once, then released)."""
    return free_port()
