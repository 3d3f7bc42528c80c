"""`logrl tail` without Ray: window cutting, following a rotating file, back-pressure, retries (loopback)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving.tail import TailSettings, WindowCutter, follow_file, tail


def test_windows_are_cut_in_order_and_the_rest_is_flushed():
    cutter = WindowCutter(3)
    windows = [cutter.feed(f"line {n}") for n in range(1, 8)]
    full = [w for w in windows if w is not None]
    assert [(w.first_line, w.lines) for w in full] == [
        (1, ["line 1", "line 2", "line 3"]),
        (4, ["line 4", "line 5", "line 6"]),
    ]
    rest = cutter.flush()
    assert (rest.first_line, rest.lines, rest.span) == (7, ["line 7"], "L7-L7")
    assert cutter.flush() is None


def test_following_a_file_survives_truncation_and_rotation(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a\nb\n")
    stop = threading.Event()
    seen: list[str] = []
    settings = TailSettings(poll_s=0.05)
    reader = threading.Thread(target=lambda: seen.extend(follow_file(log, settings, stop)), daemon=True)
    reader.start()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 5
        while len(seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    wait_for(2)
    with log.open("a") as handle:
        handle.write("c\npartial")  # a line without its newline yet is not emitted
    wait_for(3)
    time.sleep(0.2)
    assert seen == ["a", "b", "c"]
    with log.open("a") as handle:
        handle.write(" end\n")
    wait_for(4)
    log.write_text("after truncation\n")  # truncated in place
    wait_for(5)
    rotated = tmp_path / "app.log.1"
    log.rename(rotated)
    log.write_text("new file\n")  # rotated: a new inode under the same name
    wait_for(6)
    stop.set()
    reader.join(timeout=5)
    assert seen == ["a", "b", "c", "partial end", "after truncation", "new file"]


class _Detector(BaseHTTPRequestHandler):
    """Loopback /detect: 'anomalous' for windows holding 'FATAL'; call 1 gets a 429, call 2 a proxy 500."""

    lock = threading.Lock()
    in_flight = 0
    peak = 0
    calls = 0

    def do_POST(self):  # noqa: N802 (http.server's name)
        cls = type(self)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with cls.lock:
            cls.calls += 1
            first, second = cls.calls == 1, cls.calls == 2
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            if first:
                self._reply(429, {"error": {"message": "queue full", "type": "x", "param": None, "code": 429}})
                return
            if second:  # what Serve's proxy sends for a request whose replica died: plain text, not the JSON error
                data = b"Internal Server Error"
                self.send_response(500)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            time.sleep(0.1)  # a slow server: the tail must not send more than `concurrency` at once
            verdict = "anomalous" if any("FATAL" in line for line in body["lines"]) else "normal"
            self._reply(200, {"verdict": verdict, "rationale": "r", "truncated": False, "adapter_version": "v1"})
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_detector():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Detector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_tail_judges_every_window_with_bounded_concurrency(tmp_path, fake_detector):
    log = tmp_path / "app.log"
    lines = [f"routine {n}" for n in range(95)]
    lines[42] = "KERNEL FATAL data TLB error interrupt"
    log.write_text("\n".join(lines) + "\n")
    records: list[dict] = []
    settings = TailSettings(window_lines=10, concurrency=2, follow=False, flush_after_s=0.5)
    summary = tail(str(log), fake_detector, settings, emit=records.append)
    assert (summary.lines, summary.windows, summary.failed) == (95, 10, 0)  # 9 full windows and the last 5 lines
    assert summary.retries == 2 and _Detector.peak <= 2
    assert records == [
        {
            "lines": "L41-L50",
            "verdict": "anomalous",
            "rationale": "r",
            "truncated": False,
            "adapter_version": "v1",
            "latency_ms": None,
        }
    ]


def test_a_missing_file_without_follow_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(follow_file(tmp_path / "nope.log", TailSettings(follow=False), threading.Event()))
