"""The driver's settings that follow every actor and Serve replica: one list, read by every role that starts them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

# vLLM, Hugging Face, tokenizers and OpenMP read these from the environment; actors and replicas are fresh
# processes (possibly on other nodes), so they get the driver's values.
ACTOR_ENV_PREFIXES = ("VLLM_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "OMP_")
ACTOR_ENV_NAMES = ("TMPDIR", "TORCH_EXTENSIONS_DIR")


def forwarded_env(environ: Mapping[str, str] | None = None, also: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `environ` (default: this process's) that actors must share, plus the names in `also`."""
    names = {*ACTOR_ENV_NAMES, *also}
    source = os.environ if environ is None else environ
    return {key: value for key, value in source.items() if key.startswith(ACTOR_ENV_PREFIXES) or key in names}
