"""Hot adapter reload: which adapter version every replica should serve, and how a client picks one.

`POST /admin/adapters {"version": "adapter-v7"}` on any replica resolves the version inside the served adapters
folder (never an arbitrary path), loads it there, and posts it on the app's `AdapterBoard`; every other replica
polls the board and swaps within `serve.adapter_poll_s`. The board is a tiny named actor: a pure `BoardState`
plus a thin `@ray.remote` shell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import ray

from contract.adapter_store import is_adapter_folder
from serving.detect import AdapterInfo, load_adapter_info

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
BOARD_NAMESPACE = "serve"


class AdapterChoiceError(ValueError):
    """A version a client asked for that cannot be served; `status_code` is the HTTP answer."""

    def __init__(self, message: str, status_code: int = 400):
        super().__init__(message)
        self.status_code = status_code


def resolve_adapter(adapters_dir: str | Path, version: object, name: str, max_rank: int) -> AdapterInfo:
    """The adapter `version` (a folder directly inside `adapters_dir`) as served under `name`, or a clear refusal."""
    if not isinstance(version, str) or not _VERSION.match(version) or version in (".", ".."):
        raise AdapterChoiceError(
            'version must be the name of an adapter folder, e.g. {"version": "adapter-v7"} (letters, digits, ._-)'
        )
    folder = Path(adapters_dir) / version
    if not folder.is_dir():
        raise AdapterChoiceError(f"no adapter version {version!r} in the served adapters folder", 404)
    try:
        info = load_adapter_info(name, folder)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise AdapterChoiceError(f"adapter version {version!r} is not a usable LoRA folder: {err}", 422) from None
    if Path(info.path).parent != Path(adapters_dir).resolve():  # a symlink pointing out of the folder
        raise AdapterChoiceError(f"adapter version {version!r} resolves outside the served adapters folder", 400)
    if info.rank > max_rank:
        raise AdapterChoiceError(f"adapter version {version!r} has rank {info.rank} > serve.max_lora_rank {max_rank}")
    return info


def available_versions(adapters_dir: str | Path) -> list[str]:
    """Adapter folders that can be chosen, oldest first by version number where there is one."""
    root = Path(adapters_dir)
    found = [p.name for p in root.iterdir() if is_adapter_folder(p)] if root.is_dir() else []

    def order(name: str) -> tuple[int, str]:
        digits = re.search(r"(\d+)$", name)
        return (int(digits.group(1)) if digits else -1, name)

    return sorted(found, key=order)


@dataclass
class BoardState:
    """The version every replica should serve; `serial` grows on each change so replicas see every switch."""

    version: str
    path: str
    serial: int = 0

    def post(self, version: str, path: str) -> int:
        if (version, path) != (self.version, self.path):
            self.version, self.path, self.serial = version, path, self.serial + 1
        return self.serial

    def current(self) -> tuple[int, str, str]:
        return self.serial, self.version, self.path


@ray.remote(num_cpus=0)
class AdapterBoard:
    """Thin shell over BoardState, named per app so every replica finds it."""

    def __init__(self, version: str, path: str):
        self._state = BoardState(version, path)

    def reset(self, version: str, path: str) -> None:
        self._state = BoardState(version, path)

    def post(self, version: str, path: str) -> int:
        return self._state.post(version, path)

    def current(self) -> tuple[int, str, str]:
        return self._state.current()


def board_name(app_name: str) -> str:
    return f"{app_name}-adapter-board"


def open_board(app_name: str, adapter: AdapterInfo):
    """Create (or reset, if an earlier app left one) the app's board, holding the adapter it starts with."""
    board = AdapterBoard.options(
        name=board_name(app_name), namespace=BOARD_NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(adapter.version, adapter.path)
    ray.get(board.reset.remote(adapter.version, adapter.path))
    return board


def close_board(app_name: str) -> None:
    try:
        ray.kill(ray.get_actor(board_name(app_name), namespace=BOARD_NAMESPACE))
    except ValueError:
        pass  # never opened
