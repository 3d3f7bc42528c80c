"""`logrl tail` without Ray: window cutting, following a rotating file, back-pressure, retries, the spool and the
saved position across an outage and a restart, splitting, undetermined answers (loopback servers)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving.tail import TailSettings, WindowCutter, assess, follow_file, tail
from serving.tail_spool import Position, Spool, Window, resume_offset


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
    reader = threading.Thread(
        target=lambda: seen.extend(line.text for line in follow_file(log, settings, stop)), daemon=True
    )
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
    settings = TailSettings(window_lines=10, concurrency=2, follow=False, flush_after_s=0.5, state_dir=tmp_path / "s")
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
        }
    ]


def test_a_missing_file_without_follow_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(follow_file(tmp_path / "nope.log", TailSettings(follow=False), threading.Event()))


def test_offsets_count_bytes_so_a_saved_position_resumes_exactly(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes("caf\u00e9 1\nplain 2\n".encode() + b"\xff bad 3\n")
    lines = list(follow_file(log, TailSettings(follow=False), threading.Event()))
    assert [line.text for line in lines] == ["caf\u00e9 1", "plain 2", "\ufffd bad 3"]
    assert [line.end_offset for line in lines] == [8, 16, 24]
    resumed = follow_file(log, TailSettings(follow=False), threading.Event(), start_offset=lines[0].end_offset)
    assert [line.text for line in resumed] == ["plain 2", "\ufffd bad 3"]


def test_a_saved_position_is_dropped_for_a_rotated_or_truncated_file(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("a\nb\n")
    inode = log.stat().st_ino
    assert resume_offset(None, log) == (0, 1)
    assert resume_offset(Position(str(log), inode, 2, 2), log) == (2, 2)
    assert resume_offset(Position(str(log), inode, 99, 7), log) == (0, 7)  # truncated: from the start, numbering on
    assert resume_offset(Position(str(log), inode + 1, 2, 7), log) == (0, 7)  # another file under the name


def test_undetermined_answers_are_shown_and_long_windows_are_split():
    window = Window(11, [f"line {n}" for n in range(10)])
    assert assess({"verdict": "anomalous", "truncated": True}, window, False) == ("split", None)
    assert [(half.first_line, len(half.lines)) for half in window.halves()] == [(11, 5), (16, 5)]
    kind, record = assess({"verdict": None, "truncated": False, "rationale": ""}, window, False)
    assert kind == "undetermined" and record["lines"] == "L11-L20" and "malformed" in record["undetermined"]
    single = Window(5, ["one very long line"])
    kind, record = assess({"verdict": "normal", "truncated": True, "omitted_lines": [1]}, single, False)
    assert kind == "undetermined" and "could not show" in record["undetermined"]
    assert assess({"verdict": "normal", "truncated": False}, window, False) == ("normal", None)
    assert assess({"verdict": "normal", "truncated": False}, window, True)[1]["verdict"] == "normal"
    # a verdict budget forcing asked for says so in the record (its rationale was cut)
    forced = assess({"verdict": "anomalous", "truncated": False, "forced": True, "rationale": "L2 ..."}, window, False)
    assert forced[0] == "anomalous" and forced[1]["forced"] is True


def test_the_spool_survives_a_restart_and_is_bounded(tmp_path):
    spool = Spool(tmp_path / "state", max_windows=2)
    first, second = Window(1, ["a", "b"], 4), Window(3, ["c"], 6)
    spool.add(first)
    spool.add(second)
    assert spool.full() and len(spool) == 2
    spool.save_position(Position("/x.log", 7, 6, 4))
    again = Spool(tmp_path / "state", max_windows=2)
    assert again.pending() == [first, second] and again.load_position() == Position("/x.log", 7, 6, 4)
    again.remove(first)
    again.remove(first)  # twice: no harm
    assert len(again) == 1 and not again.full()


class _Switchable(BaseHTTPRequestHandler):
    """Loopback /detect on a fixed port, started and stopped by the tests: counts what it judged, by first line;
    'anomalous' for windows holding FATAL, no verdict for GARBLED, `truncated` for windows over `max_lines`."""

    judged: list[int] = []
    max_lines = 1000
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's name)
        lines = json.loads(self.rfile.read(int(self.headers["content-length"])))["lines"]
        first = int(lines[0].split()[-1])
        with type(self).lock:
            type(self).judged.append(first)
        verdict = "anomalous" if any("FATAL" in line for line in lines) else "normal"
        if any("GARBLED" in line for line in lines):
            verdict = None
        truncated = len(lines) > type(self).max_lines
        data = json.dumps({"verdict": verdict, "truncated": truncated, "omitted_lines": [len(lines)] * truncated})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args):
        pass


def _serve(port: int) -> ThreadingHTTPServer:
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), _Switchable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _wait(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate()


def test_no_window_is_lost_across_a_server_outage_and_a_tail_restart(tmp_path, free_port):
    """The server is down when the tail starts and comes back; the tail is then stopped and restarted while the
    server is down again, with lines appended meanwhile: every line is judged once, in windows numbered on."""
    _Switchable.judged, _Switchable.max_lines = [], 1000
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "app.log"
    log.write_text("".join(f"routine {n}\n" for n in range(1, 51)))
    settings = TailSettings(
        window_lines=10, flush_after_s=0.3, poll_s=0.05, state_dir=tmp_path / "state", max_spooled=3, retry_max_s=0.3
    )
    records: list[dict] = []

    def run(stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=lambda: summaries.append(tail(str(log), url, settings, records.append, stop)))
        thread.start()
        return thread

    def spooled() -> int:
        return len(list((tmp_path / "state" / "windows").glob("*.json")))

    summaries: list = []
    stop = threading.Event()
    follower = run(stop)  # nothing listens on the port yet: connection refused
    _wait(lambda: spooled() == 3)  # the spool fills up to its bound...
    time.sleep(0.5)
    assert spooled() == 3 and _Switchable.judged == []  # ...and reading pauses there
    server = _serve(port)  # the server comes up
    _wait(lambda: sorted(_Switchable.judged) == [1, 11, 21, 31, 41])
    server.shutdown()
    server.server_close()  # down again
    with log.open("a") as handle:
        handle.write("".join(f"routine {n}\n" for n in range(51, 71)))
    _wait(lambda: spooled() == 2)  # the two new windows wait in the spool
    stop.set()
    follower.join(timeout=30)
    assert summaries[0].retries > 0 and Spool(tmp_path / "state", 3).load_position().next_line == 71

    with log.open("a") as handle:  # written while no tail runs
        handle.write("".join(f"routine {n}\n" for n in range(71, 76)) + "KERNEL FATAL 76\n")
    server = _serve(port)
    stop = threading.Event()
    follower = run(stop)  # restarted: resends the spool, reads on at the saved offset
    _wait(lambda: sorted(_Switchable.judged) == [1, 11, 21, 31, 41, 51, 61, 71])
    stop.set()
    follower.join(timeout=30)
    server.shutdown()
    server.server_close()
    assert summaries[1].resent == 2 and summaries[1].lines == 6  # only the lines written after the saved offset
    assert records == [{"lines": "L71-L76", "verdict": "anomalous", "truncated": False}]
    assert spooled() == 0


def test_a_window_too_long_for_the_prompt_is_split_and_no_verdict_is_shown(tmp_path, free_port):
    _Switchable.judged, _Switchable.max_lines = [], 4
    port = free_port()
    server = _serve(port)
    log = tmp_path / "app.log"
    lines = [f"routine {n}" for n in range(1, 21)]
    lines[2] = "KERNEL FATAL 3"
    lines[14] = "GARBLED 15"
    log.write_text("\n".join(lines) + "\n")
    records: list[dict] = []
    settings = TailSettings(window_lines=10, follow=False, flush_after_s=0.3, state_dir=tmp_path / "state")
    try:
        summary = tail(str(log), f"http://127.0.0.1:{port}", settings, records.append)
    finally:
        server.shutdown()
        server.server_close()
    # 10 lines -> 5 + 5 -> 2 + 3 each: every judged part holds at most 4 lines, and every line is in one part.
    assert summary.splits == 6 and summary.windows == 8 and summary.lines == 20
    by_span = {record["lines"]: record for record in records}
    assert by_span["L3-L5"]["verdict"] == "anomalous"
    assert by_span["L13-L15"]["verdict"] is None and "malformed" in by_span["L13-L15"]["undetermined"]
    assert summary.anomalous == 1 and summary.undetermined == 1 and set(by_span) == {"L3-L5", "L13-L15"}
