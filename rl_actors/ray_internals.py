"""The one place logrl touches Ray's private serialization hooks: counting what this process pickles for Ray.

Used by `bench/driver_overhead.py` to measure how much data passes through the driver per GRPO step. Written
against Ray 2.60 (`ray._private.serialization.SerializationContext`); nothing on the training path imports it.
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
