"""The grader's side of the worker channel: strict decoding of everything the worker says.

The worker is untrusted, so nothing it sends is unpickled or trusted for its type. Headers are
size-capped JSON; arrays are validated (dtype allow-list, rank, byte count) *before* any memory
is allocated, then read exactly and wrapped with ``np.frombuffer``.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

import numpy as np

from .worker import ALLOWED_DTYPES, HEADER_FMT, MAX_DEPTH, encode_tree, frame

MAX_HEADER_BYTES = 1 << 20
MAX_NDIM = 8
MAX_PAYLOAD_BYTES = 512 << 20
MAX_STRING = 1 << 20


class ProtocolError(Exception):
    """The worker sent something that is not a valid message (a crash or a tampered channel)."""


@dataclass(frozen=True)
class RemoteRef:
    """An object that stays in the worker; the grader holds only its number and type name."""

    handle: int
    type_name: str
    is_callable: bool = False


@dataclass(frozen=True)
class TensorValue:
    """A torch tensor returned by student code, carried as a numpy array plus its metadata."""

    array: np.ndarray
    requires_grad: bool
    device: str


def encode_request(op: str, params: dict) -> bytes:
    buffers: list = []

    def handle_of(value):
        if isinstance(value, RemoteRef):
            return {"$handle": value.handle}
        ref = getattr(value, "_dlgrade_ref", None)
        if isinstance(ref, RemoteRef):
            return {"$handle": ref.handle}
        raise TypeError(f"cannot send {type(value).__name__} to the student worker")

    tree = encode_tree(params, buffers, handle_of)
    return frame({"op": op, "params": tree}, buffers)


def parse_header(raw: bytes) -> tuple[dict, list[tuple[np.dtype, tuple[int, ...], int]]]:
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"bad header: {exc}") from None
    if type(header) is not dict or type(header.get("buffers")) is not list:
        raise ProtocolError("header is not an object with a buffer list")
    specs, total = [], 0
    for spec in header["buffers"]:
        if type(spec) is not dict or type(spec.get("dtype")) is not str:
            raise ProtocolError("bad buffer spec")
        if spec["dtype"] not in ALLOWED_DTYPES:
            raise ProtocolError(f"array dtype {spec['dtype']!r} is not allowed")
        shape = spec.get("shape")
        if (type(shape) is not list or len(shape) > MAX_NDIM
                or any(type(d) is not int or d < 0 for d in shape)):
            raise ProtocolError(f"bad array shape {shape!r}")
        dtype = np.dtype(spec["dtype"])
        nbytes = math.prod(shape) * dtype.itemsize
        total += nbytes
        if total > MAX_PAYLOAD_BYTES:
            raise ProtocolError("reply too large")
        specs.append((dtype, tuple(shape), nbytes))
    return header, specs


def decode_value(node, arrays: list[np.ndarray], depth: int = 0):
    """Rebuild plain data from a validated header; anything unexpected is a ProtocolError."""
    if depth > MAX_DEPTH + 2:
        raise ProtocolError("nesting too deep")
    t = type(node)
    if node is None or t in (bool, int, float):
        return node
    if t is str:
        if len(node) > MAX_STRING:
            raise ProtocolError("string too long")
        return node
    if t is list:
        return [decode_value(v, arrays, depth + 1) for v in node]
    if t is not dict or len(node) == 0:
        raise ProtocolError(f"unexpected node {type(node).__name__}")
    if "$nd" in node:
        return arrays[_index(node["$nd"], arrays)]
    if "$tuple" in node and type(node["$tuple"]) is list:
        return tuple(decode_value(v, arrays, depth + 1) for v in node["$tuple"])
    if "$dict" in node and type(node["$dict"]) is list:
        out = {}
        for pair in node["$dict"]:
            if type(pair) is not list or len(pair) != 2 or type(pair[0]) not in (str, int):
                raise ProtocolError("bad dict entry")
            out[pair[0]] = decode_value(pair[1], arrays, depth + 1)
        return out
    if "$float" in node:
        if node["$float"] not in ("nan", "inf", "-inf"):
            raise ProtocolError("bad float")
        return float(node["$float"])
    if "$bigint" in node and type(node["$bigint"]) is str and len(node["$bigint"]) < 5000:
        return int(node["$bigint"])
    if "$tensor" in node:
        return TensorValue(arrays[_index(node["$tensor"], arrays)],
                           bool(node.get("requires_grad")), str(node.get("device", "cpu"))[:32])
    if "$handle" in node and type(node["$handle"]) is int:
        return RemoteRef(node["$handle"], str(node.get("type", "object"))[:200],
                         bool(node.get("callable", False)))
    raise ProtocolError(f"unknown node keys {sorted(node)[:5]}")


def _index(i, arrays):
    if type(i) is not int or not 0 <= i < len(arrays):
        raise ProtocolError("bad array index")
    return i


def read_message(read_exact) -> dict:
    """Read one framed message using ``read_exact(n) -> bytes`` (which enforces the deadline)."""
    (hlen,) = struct.unpack(HEADER_FMT, read_exact(4))
    if hlen > MAX_HEADER_BYTES:
        raise ProtocolError(f"header of {hlen} bytes exceeds the cap")
    header, specs = parse_header(read_exact(hlen))
    arrays = []
    for dtype, shape, nbytes in specs:
        arr = np.frombuffer(read_exact(nbytes), dtype=dtype).reshape(shape)
        arrays.append(arr.copy())  # writable, owned, native byte order
    msg = header.get("msg")
    if type(msg) is not dict or type(msg.get("ok")) is not bool:
        raise ProtocolError("reply without status")
    if msg["ok"]:
        return {"ok": True, "value": decode_value(msg.get("value"), arrays)}
    err = msg.get("error")
    if type(err) is not dict:
        raise ProtocolError("error reply without details")
    return {"ok": False, "error": {k: str(err.get(k, ""))[:8000]
                                   for k in ("type", "message", "traceback")}}
