"""`logrl tail FILE|-`: follow a growing log, cut windows as lines arrive, judge them on /detect, print what matters.

A reader thread follows the file (across truncation and rotation) or stdin into a bounded queue; the main loop
cuts windows of `window_lines` (a partial window is sent once the log has been quiet for `flush_after_s`), writes
each to the spool (`serving.tail_spool`: a window is on disk before it is sent, and the file position is saved
past it) and hands it to `concurrency` senders. Nothing is dropped:
- a window the server cannot take now (connection refused, a timeout, 429/503, a proxy 5xx) stays spooled and is
  sent again with backoff for as long as it takes; a restart of the tail sends the spool again and reads on at
  the saved position; when the spool is full the tail stops reading;
- a window too long for the model's context (`truncated`) is split in halves and each half judged;
- answers that decide nothing (no verdict: the model's answer was malformed) are printed as `undetermined`,
  beside anomalous windows (`show_all`: every window).
A refused key (401/403) stops the tail with the windows still spooled; other refusals (a 4xx for one window) are
printed as that window's error. With a first stage (`logrl tail --cascade DATA_DIR`, `serving.cascade.LinesStage`)
the tail judges each window's templates itself and sends only suspicious ones to /detect; every record says which
stage decided.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from serving.client import DetectError, detect
from serving.tail_spool import Position, Spool, Window, resume_offset

RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
STOP_STATUSES = frozenset({401, 403})  # no window can succeed with this key
_EOF = None  # queue marker: the source ended (stdin closed, or a file read once without --follow)


@dataclass(frozen=True)
class TailSettings:
    window_lines: int = 20
    flush_after_s: float = 2.0  # a partial window is judged after this long without a new line
    concurrency: int = 4
    fast: bool = True
    follow: bool = True  # keep waiting for new lines at the end of a file (stdin always ends at EOF)
    from_start: bool = True  # with no saved position: read a file from its start (else only new lines)
    poll_s: float = 0.2
    timeout_s: float = 120.0
    show_all: bool = False  # print every window's verdict, not only anomalous and undetermined ones
    state_dir: Path | None = None  # spool + position; default: per file under the cache, a temp folder for stdin
    max_spooled: int = 2000  # windows waiting for an answer, at most; then reading pauses
    retry_max_s: float = 10.0  # the longest wait between two tries of a window


@dataclass(frozen=True)
class Line:
    text: str
    end_offset: int | None = None  # byte offset just past the line, for files
    inode: int | None = None  # of the file it was read from


class TailStopped(RuntimeError):
    """The tail cannot go on (the server refuses the key); every window not yet judged is still spooled."""


@dataclass
class WindowCutter:
    """Pure core: raw lines in, full windows out; `flush` gives the partial window."""

    window_lines: int
    next_line: int = 1
    _pending: list[str] = field(default_factory=list)
    _end_offset: int | None = None

    def feed(self, line: str, end_offset: int | None = None) -> Window | None:
        self._pending.append(line)
        self._end_offset = end_offset
        return self.flush() if len(self._pending) >= self.window_lines else None

    def flush(self) -> Window | None:
        if not self._pending:
            return None
        window = Window(self.next_line, self._pending, self._end_offset)
        self.next_line += len(self._pending)
        self._pending = []
        return window


@dataclass
class TailSummary:
    windows: int = 0  # answered (each half of a split window counts)
    anomalous: int = 0
    undetermined: int = 0
    failed: int = 0  # refused for good (a 4xx for that window)
    retries: int = 0
    splits: int = 0
    classical: int = 0  # decided by the tail's own first stage, without a request
    resent: int = 0  # windows found in the spool at start and sent again
    lines: int = 0
    state_dir: str = ""


_SHOWN = ("verdict", "score", "stage", "rationale", "forced", "truncated", "adapter_version", "latency_ms")


def assess(answer: dict[str, Any], window: Window, show_all: bool) -> tuple[str, dict[str, Any] | None]:
    """Pure core: what an answer means for its window: ("split", None) when the prompt could not show it all and
    it can be halved; else (kind, record or None) with kind "anomalous", "undetermined" or "normal"."""
    if answer.get("truncated") and len(window.lines) > 1:
        return "split", None
    record = {"lines": window.span, **{key: answer.get(key) for key in _SHOWN if key in answer}}
    if answer.get("verdict") is None:
        record["undetermined"] = "no verdict: the model's answer was malformed"
        return "undetermined", record
    if answer.get("truncated"):
        record["undetermined"] = f"the prompt could not show lines {answer.get('omitted_lines')}"
        return "undetermined", record
    kind = "anomalous" if answer["verdict"] == "anomalous" else "normal"
    return kind, record if kind == "anomalous" or show_all else None


def retryable(err: Exception) -> bool:
    """Whether a failure may pass if the same window is sent again later."""
    if isinstance(err, httpx.TransportError):  # refused, reset, timed out: the server is down or restarting
        return True
    if isinstance(err, DetectError):
        return err.status_code in RETRY_STATUSES or (err.status_code >= 500 and err.from_proxy)
    return False


READ_BYTES = 1 << 16  # read at a time: lines travel from the reader thread in batches, not one by one


def follow_file_batches(
    path: Path, settings: TailSettings, stop: threading.Event, start_offset: int | None = None
) -> Iterator[list[Line]]:
    """Lines of `path` as they are written, in batches (all the complete lines of one read), from `start_offset`
    (else its start, or its end with `from_start` off); reopens it when it is truncated or replaced (log
    rotation) and reads the new file from its start."""
    handle = None
    identity = None
    partial = b""
    offset = start_offset
    try:
        while not stop.is_set():
            if handle is None:
                try:
                    handle = path.open("rb")
                except FileNotFoundError:
                    if not settings.follow:
                        raise
                    stop.wait(settings.poll_s)
                    continue
                identity = _inode(handle)
                if offset is not None:
                    handle.seek(offset)
                elif not settings.from_start:
                    handle.seek(0, 2)
            chunk = handle.read(READ_BYTES)
            if chunk:
                data, partial = partial + chunk, b""
                cut = data.rfind(b"\n") + 1
                position = handle.tell() - len(data)  # the byte offset of data[0]
                batch = []
                for raw in data[: cut - 1].split(b"\n") if cut else ():
                    position += len(raw) + 1
                    batch.append(Line(_text(raw), position, identity))
                partial = data[cut:]
                if batch:
                    yield batch
                continue
            if not settings.follow:
                break
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != identity or current.st_size < handle.tell():
                handle.close()  # rotated or truncated: read the new file from its start
                handle, partial, offset = None, b"", 0
                continue
            stop.wait(settings.poll_s)
        if partial and not stop.is_set():
            yield [Line(_text(partial), handle.tell() if handle else None, identity)]
    finally:
        if handle is not None:
            handle.close()


def follow_file(
    path: Path, settings: TailSettings, stop: threading.Event, start_offset: int | None = None
) -> Iterator[Line]:
    """`follow_file_batches`, a line at a time."""
    for batch in follow_file_batches(path, settings, stop, start_offset):
        yield from batch


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _inode(handle: Any) -> int:
    return os.fstat(handle.fileno()).st_ino


def _read_into(source: Iterator[list[Line]], lines: queue.Queue, stop: threading.Event) -> None:
    try:
        for batch in source:
            while not stop.is_set():
                try:
                    lines.put(batch, timeout=0.2)  # a full queue is the back-pressure on the reader
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    finally:
        lines.put(_EOF)


class _Senders:
    """Sends spooled windows to /detect with `concurrency` threads until each is answered (or refused for good)."""

    def __init__(
        self, url, settings: TailSettings, spool: Spool, emit, stop, api_key, summary: TailSummary, cascade=None
    ):
        self.url, self.settings, self.spool, self.emit = url, settings, spool, emit
        self.stop, self.api_key, self.summary, self.cascade = stop, api_key, summary, cascade
        self.pool = ThreadPoolExecutor(max_workers=settings.concurrency)
        self.client = httpx.Client(limits=httpx.Limits(max_connections=settings.concurrency))
        self.report = threading.Lock()
        self.stopped_by: Exception | None = None
        self.reasons: dict[str, str] = {}  # window key -> why the tail's first stage passed it on

    def submit(self, window: Window, reason: str | None = None) -> None:
        if reason:
            self.reasons[window.key] = reason
        self.pool.submit(self._deliver, window)

    def _deliver(self, window: Window) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                answer = detect(
                    self.url,
                    window.lines,
                    fast=self.settings.fast,
                    timeout=self.settings.timeout_s,
                    api_key=self.api_key,
                )
            except (DetectError, httpx.HTTPError) as err:
                if retryable(err):
                    with self.report:
                        self.summary.retries += 1
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.settings.retry_max_s)
                    continue
                if isinstance(err, DetectError) and err.status_code in STOP_STATUSES:
                    self.stopped_by = err
                    self.stop.set()
                    return
                with self.report:
                    self.summary.failed += 1
                    self.emit({"lines": window.span, "error": str(err)})
                self.spool.remove(window)
                return
            self._answered(window, answer)
            return

    def _answered(self, window: Window, answer: dict[str, Any]) -> None:
        kind, record = assess(answer, window, self.settings.show_all)
        reason = self.reasons.pop(window.key, None)
        if kind == "split":
            halves = window.halves()
            for half in halves:
                self.spool.add(half)
            self.spool.remove(window)
            with self.report:
                self.summary.splits += 1
            for half in halves:
                self.submit(half, reason)
            return
        if record is not None and reason:
            record["stage_reason"] = reason
        with self.report:
            self.summary.windows += 1
            self.summary.anomalous += kind == "anomalous"
            self.summary.undetermined += kind == "undetermined"
            if record is not None:
                self.emit(record)
        self.spool.remove(window)

    def decided_here(self, window: Window, verdict: str, reason: str) -> None:
        """A window the tail's first stage decided, recorded like an answer."""
        record = {"lines": window.span, "verdict": verdict, "stage": "classical", "stage_reason": reason}
        with self.report:
            self.summary.windows += 1
            self.summary.classical += 1
            self.summary.anomalous += verdict == "anomalous"
            if verdict == "anomalous" or self.settings.show_all:
                self.emit(record)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()


def tail(
    source: str,
    url: str,
    settings: TailSettings = TailSettings(),
    emit: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
    api_key: str | None = None,
    cache_dir: Path | None = None,
    first_stage: Any = None,
    on_window: Callable[[Window], None] | None = None,
) -> TailSummary:
    """Follow `source` (a path, or '-' for stdin) until it ends or `stop` is set; emit one record per window shown.

    `first_stage` (a `serving.cascade.LinesStage`) decides what it can here and sends only suspicious windows.
    `on_window` is called with each window as it is cut (benches time the verdicts from there).

    Raises TailStopped when the server refuses the key; FileNotFoundError for a missing file without follow.
    """
    from serving.tail_spool import default_state_dir

    is_file = source != "-"
    if is_file and not settings.follow and not Path(source).is_file():
        raise FileNotFoundError(f"{source}: no such log file")
    stop = stop or threading.Event()
    emit = emit or (lambda record: print(json.dumps(record), flush=True))
    temporary = settings.state_dir is None and not is_file
    if settings.state_dir is not None:
        state_dir = Path(settings.state_dir)
    elif is_file:
        state_dir = default_state_dir(source, cache_dir or Path.home() / ".cache" / "logrl")
    else:
        state_dir = Path(tempfile.mkdtemp(prefix="logrl-tail-"))
    spool = Spool(state_dir, settings.max_spooled)
    summary = TailSummary(state_dir=str(state_dir))
    start_offset, next_line = None, 1
    saved = spool.load_position() if is_file else None
    if saved is not None:
        start_offset, next_line = resume_offset(saved, Path(source))
    # Windows the tail's own first stage passed on skip the server's (it would only repeat the same judgement).
    senders = _Senders(url, settings, spool, emit, stop, api_key, summary, False if first_stage else None)
    pending = spool.pending()
    summary.resent = len(pending)
    for window in pending:
        senders.submit(window)

    lines: queue.Queue = queue.Queue(maxsize=64)  # batches of lines
    reader_source = (
        _stdin_lines(stop) if not is_file else follow_file_batches(Path(source), settings, stop, start_offset)
    )
    reader = threading.Thread(target=_read_into, args=(reader_source, lines, stop), daemon=True)
    reader.start()
    cutter = WindowCutter(settings.window_lines, next_line)
    inode = None  # of the file the latest line came from: the one a saved offset points into
    resolved = str(Path(source).resolve()) if is_file else ""

    last_saved, unsaved = [0.0], [None]

    def save_position(window: Window | None, now: bool) -> None:
        unsaved[0] = window
        if window is None or inode is None or window.end_offset is None:
            return
        if now or time.monotonic() - last_saved[0] > 0.5:
            spool.save_position(Position(resolved, inode, window.end_offset, cutter.next_line))
            last_saved[0], unsaved[0] = time.monotonic(), None

    def spool_and_send(window: Window | None) -> None:
        if window is None:
            return
        if on_window is not None:
            on_window(window)
        reason = None
        if first_stage is not None:
            decision = first_stage.judge(window.lines)
            if decision.decision != "model":
                senders.decided_here(window, decision.decision, decision.reason)
                save_position(window, now=False)  # at least once: a restart may judge a few windows again
                return
            reason = decision.reason
        while spool.full():  # every slot holds a window not yet answered: stop taking lines
            if stop.wait(0.1):
                return
        spool.add(window)
        save_position(window, now=True)
        senders.submit(window, reason)

    try:
        while not stop.is_set():
            try:
                batch = lines.get(timeout=settings.flush_after_s)
            except queue.Empty:
                spool_and_send(cutter.flush())  # the log went quiet: judge what has arrived
                continue
            if batch is _EOF:
                spool_and_send(cutter.flush())
                break
            for line in batch:
                if stop.is_set():
                    break
                summary.lines += 1
                inode = line.inode
                spool_and_send(cutter.feed(line.text, line.end_offset))
        save_position(unsaved[0], now=True)
        _wait_until_answered(spool, stop)
    finally:
        stop.set()
        senders.close()
    if senders.stopped_by is not None:
        raise TailStopped(f"{senders.stopped_by}; {len(spool)} windows stay spooled in {state_dir}")
    if temporary and len(spool) == 0:
        shutil.rmtree(state_dir, ignore_errors=True)
    return summary


def _wait_until_answered(spool: Spool, stop: threading.Event) -> None:
    """The source ended: wait for the spool to drain (or for a stop)."""
    while len(spool) and not stop.wait(0.05):
        pass


def _stdin_lines(stop: threading.Event) -> Iterator[list[Line]]:
    for line in sys.stdin:
        if stop.is_set():
            return
        yield [Line(line.rstrip("\r\n"))]
