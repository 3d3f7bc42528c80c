"""What the `[gpu]` extra resolves to for a user on PyPI: a summary of `pip install --dry-run --report`.

`make gpu-deps-check` runs pip without this machine's configured indexes (only PyPI, as a user's pip) and writes
the summary below to docs/results/gpu-deps/; the image's CUDA tag is checked against it (tests/cluster).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

KEY_PACKAGES = ("vllm", "torch", "ray", "deepspeed", "peft", "transformers", "flashinfer-python", "triton")


def _name(item: dict) -> str:
    return re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()


def cuda_version(versions: dict[str, str]) -> str:
    """CUDA major.minor of the resolved torch: its pinned cuda-toolkit, else the CUDA runtime wheel."""
    for name in ("cuda-toolkit", "nvidia-cuda-runtime", "nvidia-cuda-runtime-cu12"):
        if name in versions:
            return ".".join(versions[name].split(".")[:2])
    raise ValueError("no CUDA runtime among the resolved packages: is this a GPU resolution?")


def cuda_tag(cuda: str) -> str:
    """Ray's image tag suffix for a CUDA version: 13.0 -> cu130, 12.8 -> cu128."""
    major, minor = cuda.split(".")[:2]
    return f"cu{major}{minor}"


def summarize(report: dict) -> dict:
    """Python, platform, package count, every resolved version, the key packages and the CUDA version."""
    versions = {_name(item): item["metadata"]["version"] for item in report["install"]}
    sdists = sorted(_name(i) for i in report["install"] if not i["download_info"]["url"].endswith(".whl"))
    env = report.get("environment", {})
    cuda = cuda_version(versions)
    return {
        "pip": report.get("pip_version"),
        "python": env.get("python_full_version") or env.get("python_version"),
        "platform": f"{env.get('sys_platform')} {env.get('platform_machine')}",
        "packages": len(versions),
        "key": {name: versions.get(name) for name in KEY_PACKAGES},
        "cuda": cuda,
        "image_tag": cuda_tag(cuda),
        "built_from_sdist": sdists,
        "versions": dict(sorted(versions.items())),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("report", help="pip's --report JSON")
    parser.add_argument("--out", required=True, help="folder for summary.json")
    args = parser.parse_args(argv)
    summary = summarize(json.loads(Path(args.report).read_text()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    key = ", ".join(f"{k} {v}" for k, v in summary["key"].items())
    print(f"[gpu-deps] {summary['packages']} packages for Python {summary['python']}: {key}; CUDA {summary['cuda']}")


if __name__ == "__main__":
    main()
