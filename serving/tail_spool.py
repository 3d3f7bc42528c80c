"""`logrl tail`'s state on disk: windows cut but not yet judged, and where in the followed file to read on.

Write-ahead: a window is written to the spool before it is sent and leaves it once its answer is printed, and the
saved position moves past a window's lines only after the window is spooled. A restart of the tail (or an outage
of the server) loses nothing: spooled windows are sent again and reading resumes at the saved position. Delivery
is at least once: a window answered just before a crash is printed again after it. The spool is bounded; when
it is full the tail stops reading (a file keeps its lines; a writer into stdin waits). Files are replaced
atomically (write, then rename), so a crash leaves the old or the new state, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

POSITION_FILE = "position.json"
WINDOWS_DIR = "windows"


@dataclass(frozen=True)
class Window:
    """Consecutive lines of the followed stream; `end_offset` is the byte offset just past the last one (files)."""

    first_line: int  # 1-based line numbers in the followed stream, counted across restarts
    lines: list[str]
    end_offset: int | None = None

    @property
    def span(self) -> str:
        return f"L{self.first_line}-L{self.first_line + len(self.lines) - 1}"

    @property
    def key(self) -> str:
        """Unique among spooled windows (the halves of a split window start at different lines)."""
        return f"{self.first_line:012d}-{len(self.lines):07d}"

    def halves(self) -> tuple[Window, Window]:
        """The window split in two at its middle line (it must hold two lines at least)."""
        middle = len(self.lines) // 2
        return (
            Window(self.first_line, self.lines[:middle], None),
            Window(self.first_line + middle, self.lines[middle:], self.end_offset),
        )


@dataclass(frozen=True)
class Position:
    """Where the tail is in a followed file: the file's identity, the byte offset to read from, the next line's
    number."""

    path: str
    inode: int
    offset: int
    next_line: int


def _write_atomically(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def default_state_dir(source: str, cache_dir: Path) -> Path:
    """The state folder of a followed file: one per absolute path, under the cache folder."""
    digest = hashlib.sha256(str(Path(source).resolve()).encode("utf-8")).hexdigest()[:16]
    return cache_dir / "tail" / f"{Path(source).name}-{digest}"


class Spool:
    """The spooled windows and the saved position, in one folder."""

    def __init__(self, folder: Path, max_windows: int):
        self.folder = Path(folder)
        self.max_windows = max_windows
        self._windows = self.folder / WINDOWS_DIR
        self._windows.mkdir(parents=True, exist_ok=True)
        self._count = sum(1 for _ in self._windows.glob("*.json"))
        self._lock = threading.Lock()  # the reader adds while senders remove

    def __len__(self) -> int:
        return self._count

    def full(self) -> bool:
        return self._count >= self.max_windows

    def add(self, window: Window) -> None:
        path = self._windows / f"{window.key}.json"
        with self._lock:
            existed = path.exists()
            _write_atomically(path, asdict(window))
            self._count += not existed

    def remove(self, window: Window) -> None:
        with self._lock:
            try:
                (self._windows / f"{window.key}.json").unlink()
                self._count -= 1
            except FileNotFoundError:
                pass

    def pending(self) -> list[Window]:
        """Spooled windows, in stream order."""
        windows = []
        for path in sorted(self._windows.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            windows.append(Window(data["first_line"], data["lines"], data.get("end_offset")))
        return windows

    def save_position(self, position: Position) -> None:
        _write_atomically(self.folder / POSITION_FILE, asdict(position))

    def load_position(self) -> Position | None:
        try:
            return Position(**json.loads((self.folder / POSITION_FILE).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None


def resume_offset(saved: Position | None, path: Path) -> tuple[int, int]:
    """(byte offset, next line number) to read `path` from: the saved position when it is still this file and
    still within it; the start of the file when it was rotated (a new inode) or truncated, numbering on."""
    if saved is None:
        return 0, 1
    try:
        status = path.stat()
    except FileNotFoundError:
        return 0, saved.next_line
    if status.st_ino != saved.inode or status.st_size < saved.offset:
        return 0, saved.next_line
    return saved.offset, saved.next_line
