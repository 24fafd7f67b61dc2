"""Batches of parameter sets: split below the Data API's request size limit, and the values the
database generated for each set."""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping
from typing import Any

from ._values import decode_field

# A BatchExecuteStatement request may carry 4 MiB; parameter sets are split well below that.
BATCH_BYTES = 3 * 1024 * 1024


def generated_values(response: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The generated fields of each parameter set of a BatchExecuteStatement response."""
    return [
        tuple(decode_field(f, "") for f in result.get("generatedFields") or ())
        for result in response.get("updateResults") or ()
    ]


def split_batches(sets: list[list[dict[str, Any]]]) -> Generator[list[list[dict[str, Any]]], None, None]:
    """``sets`` in consecutive batches, each under :data:`BATCH_BYTES` (a set larger than that goes
    alone)."""
    chunk: list[list[dict[str, Any]]] = []
    size = 0
    for parameters in sets:
        weight = _weight(parameters)
        if chunk and size + weight > BATCH_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(parameters)
        size += weight
    if chunk:
        yield chunk


def _weight(parameters: list[dict[str, Any]]) -> int:
    """About the JSON size of one parameter set (blobs travel as base64)."""
    size = 2
    for parameter in parameters:
        value = parameter["value"]
        blob = value.get("blobValue")
        if blob is not None:
            size += len(blob) * 4 // 3 + 64 + len(parameter["name"])
        else:
            size += len(json.dumps(parameter, ensure_ascii=False).encode()) + 2
    return size
