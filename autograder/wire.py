"""The grader's side of the worker channel: strict decoding of everything the worker says.

The worker is untrusted, so nothing it sends is unpickled or trusted for its type. Headers are
size-capped JSON; arrays are validated (dtype allow-list, rank, byte count) *before* any memory
is allocated, then read exactly and wrapped with ``np.frombuffer``. Every field of every node is
type-checked: whatever the worker sends, decoding ends in a value or a ProtocolError, never in
another exception of the grader's.

Memory the grader spends on one reply: the JSON header (at most ``MAX_HEADER_BYTES``) and the
arrays (at most ``MAX_PAYLOAD_BYTES`` in all), each held twice at most while read. A test keeps
only the values it checks; what the grader keeps beyond that, the calls recorded for naming
mistakes, is capped per test (``diagnose.MAX_RECORDED_BYTES``, oldest calls dropped), and
whatever the diagnoser computes from them runs in a memory-capped child (``bounded``).
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np

from .values import RemoteRef, TensorValue
from .codec import ALLOWED_DTYPES, HEADER_FMT, MAX_DEPTH, encode_tree, frame

MAX_HEADER_BYTES = 1 << 20
MAX_NDIM = 8
# Per reply. The largest a bundled assignment sends is ~5 MB: 64 MiB leaves room for
# bigger ones while keeping the grader's own peak (an array is held twice while read) far
# below Gradescope's 768 MB. It was 512 MiB: one reply could take the grader past that.
MAX_PAYLOAD_BYTES = 64 << 20
MAX_STRING = 1 << 20
# Python refuses to parse longer digit strings by default (sys.get_int_max_str_digits), and
# the worker cannot print a longer int either.
MAX_BIGINT_DIGITS = 4300
MAX_TYPE_NAME = 200
MAX_DEVICE_NAME = 32
MAX_ERROR_TEXT = 8000


class ProtocolError(Exception):
    """The worker sent something that is not a valid message (a crash or a tampered channel)."""


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
        return _string(node, MAX_STRING, "string")
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
            key = _string(pair[0], MAX_STRING, "dict key") if type(pair[0]) is str else pair[0]
            out[key] = decode_value(pair[1], arrays, depth + 1)
        return out
    if "$float" in node:
        if node["$float"] not in ("nan", "inf", "-inf"):
            raise ProtocolError("bad float")
        return float(node["$float"])
    if "$bigint" in node:
        return _bigint(node["$bigint"])
    if "$tensor" in node:
        requires_grad, device = node.get("requires_grad", False), node.get("device", "cpu")
        if type(requires_grad) is not bool or type(device) is not str:
            raise ProtocolError("bad tensor metadata")
        return TensorValue(arrays[_index(node["$tensor"], arrays)], requires_grad,
                           device[:MAX_DEVICE_NAME])
    if "$handle" in node and type(node["$handle"]) is int:
        type_name, is_callable = node.get("type", "object"), node.get("callable", False)
        if type(type_name) is not str or type(is_callable) is not bool:
            raise ProtocolError("bad object handle")
        return RemoteRef(node["$handle"], type_name[:MAX_TYPE_NAME], is_callable)
    raise ProtocolError(f"unknown node keys {sorted(map(str, node))[:5]}")


def _string(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise ProtocolError(f"{what} too long")
    return value


def _bigint(text) -> int:
    """An int too large for a JSON number: decimal digits only (``int()`` would also take
    whitespace, underscores and non-ASCII digits), no longer than Python parses."""
    digits = text.removeprefix("-") if type(text) is str else ""
    if not (0 < len(digits) <= MAX_BIGINT_DIGITS and digits.isascii() and digits.isdigit()):
        raise ProtocolError("bad $bigint")
    try:
        return int(text)
    except ValueError:  # the interpreter's digit limit was set lower than the default
        raise ProtocolError("bad $bigint") from None


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
    details = {k: err.get(k, "") for k in ("type", "message", "traceback")}
    if any(type(v) is not str for v in details.values()):
        raise ProtocolError("error details are not text")
    return {"ok": False, "error": {k: v[:MAX_ERROR_TEXT] for k, v in details.items()}}
