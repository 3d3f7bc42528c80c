"""`logrl tail FILE|-`: follow a growing log, cut windows as lines arrive, judge them on /detect, print anomalies.

A reader thread follows the file (across truncation and rotation) or stdin into a bounded queue; the main loop
cuts windows of `window_lines` (a partial window is sent once the log has been quiet for `flush_after_s`) and
hands each to a pool of `concurrency` senders. When every sender is busy the main loop waits, the queue fills and
the reader stops reading: a slow server slows the tail instead of piling up memory. 429/503 answers, and 5xx
answers from Serve's proxy rather than the detector (a replica that died mid-request), are retried with backoff;
other failures are reported per window and the tail goes on.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from serving.client import DetectError, detect

RETRY_STATUSES = frozenset({429, 503})
_EOF = None  # queue marker: the source ended (stdin closed, or a file read once without --follow)


@dataclass(frozen=True)
class TailSettings:
    window_lines: int = 20
    flush_after_s: float = 2.0  # a partial window is judged after this long without a new line
    concurrency: int = 4
    fast: bool = True
    follow: bool = True  # keep waiting for new lines at the end of a file (stdin always ends at EOF)
    from_start: bool = True  # read a file from its start (else only lines appended from now on)
    poll_s: float = 0.2
    timeout_s: float = 120.0
    max_retries: int = 5
    show_all: bool = False  # print every window's verdict, not only anomalies


@dataclass(frozen=True)
class Window:
    first_line: int  # 1-based line numbers in the followed stream
    lines: list[str]

    @property
    def span(self) -> str:
        return f"L{self.first_line}-L{self.first_line + len(self.lines) - 1}"


@dataclass
class WindowCutter:
    """Pure core: raw lines in, full windows out; `flush` gives the partial window."""

    window_lines: int
    _pending: list[str] = field(default_factory=list)
    _next_line: int = 1

    def feed(self, line: str) -> Window | None:
        self._pending.append(line)
        return self.flush() if len(self._pending) >= self.window_lines else None

    def flush(self) -> Window | None:
        if not self._pending:
            return None
        window = Window(self._next_line, self._pending)
        self._next_line += len(self._pending)
        self._pending = []
        return window


@dataclass
class TailSummary:
    windows: int = 0
    anomalous: int = 0
    failed: int = 0
    retries: int = 0
    lines: int = 0


def follow_file(path: Path, settings: TailSettings, stop: threading.Event) -> Iterator[str]:
    """Lines of `path` as they are written; reopens it when it is truncated or replaced (log rotation)."""
    handle: TextIO | None = None
    identity = None
    partial = ""
    try:
        while not stop.is_set():
            if handle is None:
                try:
                    handle = path.open("r", encoding="utf-8", errors="replace", newline="")
                except FileNotFoundError:
                    if not settings.follow:
                        raise
                    stop.wait(settings.poll_s)
                    continue
                identity = os.fstat(handle.fileno()).st_ino
                if not settings.from_start:
                    handle.seek(0, os.SEEK_END)
            chunk = handle.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial.rstrip("\r\n")
                    partial = ""
                continue
            if not settings.follow:
                break
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != identity or current.st_size < handle.tell():
                handle.close()  # rotated or truncated: read the new file from its start
                handle, partial = None, ""
                settings = replace(settings, from_start=True)
                continue
            stop.wait(settings.poll_s)
        if partial and not stop.is_set():
            yield partial.rstrip("\r\n")
    finally:
        if handle is not None:
            handle.close()


def _read_into(source: Iterator[str], lines: queue.Queue, stop: threading.Event) -> None:
    try:
        for line in source:
            while not stop.is_set():
                try:
                    lines.put(line, timeout=0.2)  # a full queue is the back-pressure on the reader
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    finally:
        lines.put(_EOF)


def judge(url: str, window: Window, settings: TailSettings, api_key: str | None, summary: TailSummary) -> dict:
    """One window's /detect answer, retrying refusals that ask to come back later."""
    delay = 0.5
    for attempt in range(settings.max_retries + 1):
        try:
            return detect(url, window.lines, fast=settings.fast, timeout=settings.timeout_s, api_key=api_key)
        except DetectError as err:
            retryable = err.status_code in RETRY_STATUSES or (err.status_code >= 500 and err.from_proxy)
            if not retryable or attempt == settings.max_retries:
                raise
            summary.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
    raise AssertionError("unreachable")


def tail(
    source: str,
    url: str,
    settings: TailSettings = TailSettings(),
    emit: Callable[[dict[str, Any]], None] | None = None,
    stop: threading.Event | None = None,
    api_key: str | None = None,
) -> TailSummary:
    """Follow `source` (a path, or '-' for stdin) until it ends or `stop` is set; emit one record per result."""
    if source != "-" and not settings.follow and not Path(source).is_file():
        raise FileNotFoundError(f"{source}: no such log file")
    stop = stop or threading.Event()
    emit = emit or (lambda record: print(json.dumps(record), flush=True))
    lines: queue.Queue = queue.Queue(maxsize=max(4 * settings.window_lines, 64))
    reader_source = _stdin_lines(stop) if source == "-" else follow_file(Path(source), settings, stop)
    reader = threading.Thread(target=_read_into, args=(reader_source, lines, stop), daemon=True)
    reader.start()
    summary = TailSummary()
    slots = threading.BoundedSemaphore(settings.concurrency)
    report = threading.Lock()

    def done(window: Window, future: Future) -> None:
        slots.release()
        with report:
            try:
                answer = future.result()
            except Exception as err:  # one window failing does not stop the tail
                summary.failed += 1
                emit({"lines": window.span, "error": str(err)})
                return
            summary.windows += 1
            anomalous = answer.get("verdict") == "anomalous"
            summary.anomalous += anomalous
            if anomalous or settings.show_all:
                emit({"lines": window.span, **{k: answer.get(k) for k in _SHOWN}})

    cutter = WindowCutter(settings.window_lines)
    with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:

        def send(window: Window | None) -> None:
            if window is None:
                return
            while not slots.acquire(timeout=0.2):  # every sender busy: stop taking lines
                if stop.is_set():
                    return
            future = pool.submit(judge, url, window, settings, api_key, summary)
            future.add_done_callback(lambda f, w=window: done(w, f))

        while not stop.is_set():
            try:
                line = lines.get(timeout=settings.flush_after_s)
            except queue.Empty:
                send(cutter.flush())  # the log went quiet: judge what has arrived
                continue
            if line is _EOF:
                send(cutter.flush())
                break
            summary.lines += 1
            send(cutter.feed(line))
    stop.set()
    return summary


_SHOWN = ("verdict", "rationale", "truncated", "adapter_version", "latency_ms")


def _stdin_lines(stop: threading.Event) -> Iterator[str]:
    for line in sys.stdin:
        if stop.is_set():
            return
        yield line.rstrip("\r\n")
