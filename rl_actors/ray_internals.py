"""The one place logrl touches Ray core's private Python hooks (written against Ray 2.60); nothing on the training
path imports it.

- `serialized_bytes`: counts what this process pickles for Ray (`ray._private.serialization.SerializationContext`);
  used by `bench/driver_overhead.py` to measure how much data passes through the driver per GRPO step.
- `reload_ray_settings`: makes a process that imported Ray earlier read `RAY_AUTH_MODE` / `RAY_AUTH_TOKEN` again
  (`ray._raylet.Config.initialize`, `AuthenticationTokenLoader.reset_cache`, what `ray.init` itself does when it turns
  token auth on) and `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER` (`ray._private.ray_constants.ENABLE_RAY_CLUSTER`); used by the
  multi-node tests, whose `ray.cluster_utils.Cluster` starts nodes without `ray.init`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def _size(data) -> int:
    if data is None:
        return 0
    return data.nbytes if hasattr(data, "nbytes") else len(data)


@contextmanager
def serialized_bytes() -> Iterator[dict[str, int]]:
    """Inside the block, count the bytes this process serializes for Ray (task and actor-call arguments, `ray.put`)
    as "sent" and deserializes (results it `ray.get`s) as "received"."""
    from ray._private.serialization import SerializationContext

    counts = {"sent": 0, "received": 0}
    serialize, deserialize = SerializationContext.serialize, SerializationContext.deserialize_objects

    def counting_serialize(self, value):
        out = serialize(self, value)
        counts["sent"] += int(out.total_bytes)
        return out

    def counting_deserialize(self, serialized, object_refs, *args, **kwargs):
        counts["received"] += sum(_size(item[0]) for item in serialized)
        return deserialize(self, serialized, object_refs, *args, **kwargs)

    SerializationContext.serialize = counting_serialize
    SerializationContext.deserialize_objects = counting_deserialize
    try:
        yield counts
    finally:
        SerializationContext.serialize, SerializationContext.deserialize_objects = serialize, deserialize


def reload_ray_settings() -> None:
    """Re-read Ray's auth settings and its single-node switch from this process's environment, now: the nodes and
    the driver connection started afterwards use them (Ray otherwise keeps what it read when first imported)."""
    from ray._private import ray_constants
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    ray_constants.ENABLE_RAY_CLUSTER = ray_constants.env_bool(
        ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, not ray_constants.IS_WINDOWS_OR_OSX
    )
