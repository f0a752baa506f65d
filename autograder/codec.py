"""The worker channel's framing, used on both sides: ``<u32 header length><JSON header><raw
buffers>``, the header ``{"msg": tree, "buffers": [{"dtype", "shape"}, ...]}``, arrays inside
``tree`` as ``{"$nd": index}``. No pickle, ever. The grader's strict decoder is ``wire``; this
module also runs inside the worker (copied beside worker.py), so it imports nothing of the
``autograder`` package."""
from __future__ import annotations

import collections
import json
import math
import os
import struct
import sys

HEADER_FMT = "<I"
MAX_HEADER = 1 << 20
ALLOWED_DTYPES = {
    "<f2", "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1",
}
MAX_DEPTH = 32

# -------------------------------------------------------------------------------------
# Encoding (used on both sides; the grader's decoder in wire.py is the trust boundary)
# -------------------------------------------------------------------------------------


class Unencodable(Exception):
    """Raised for values that cannot travel as plain data (the worker then sends a handle)."""


def encode_tree(value, buffers: list, make_handle=None, depth: int = 0):
    import numpy as np

    if depth > MAX_DEPTH:
        raise Unencodable("nesting too deep")
    # Exact type checks: subclasses with lying dunder methods must not pass as plain data.
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        if abs(value) < 2**53:
            return value
        return {"$bigint": str(value)}
    if t is float:
        if math.isfinite(value):
            return value
        return {"$float": repr(value)}
    if t is np.ndarray or isinstance(value, np.generic):
        arr = np.asarray(value)
        if type(arr) is not np.ndarray:
            raise Unencodable("ndarray subclass")
        dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dtype.str not in ALLOWED_DTYPES:
            raise Unencodable(f"array dtype {arr.dtype}")
        buffers.append(np.asarray(arr, dtype=dtype, order="C"))
        return {"$nd": len(buffers) - 1}
    if t is tuple or t is list:
        items = [encode_tree(v, buffers, make_handle, depth + 1) for v in value]
        return {"$tuple": items} if t is tuple else items
    # state_dict() is an OrderedDict; a history built with defaultdict(list) is a dict too.
    if t is dict or t is collections.OrderedDict or t is collections.defaultdict:
        pairs = []
        for k, v in value.items():
            if type(k) not in (str, int):
                raise Unencodable("dict key type")
            pairs.append([k, encode_tree(v, buffers, make_handle, depth + 1)])
        return {"$dict": pairs}
    torch = sys.modules.get("torch")
    if torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter):
        arr = value.detach().cpu().numpy()
        if arr.dtype.str not in ALLOWED_DTYPES:
            raise Unencodable(f"tensor dtype {value.dtype}")
        buffers.append(np.asarray(arr, order="C"))
        return {"$tensor": len(buffers) - 1, "requires_grad": bool(value.requires_grad),
                "device": str(value.device)}
    if make_handle is not None:
        return make_handle(value)
    raise Unencodable(f"type {t.__name__}")


def frame(msg, buffers) -> bytes:
    header = json.dumps({
        "msg": msg,
        "buffers": [{"dtype": b.dtype.str, "shape": list(b.shape)} for b in buffers],
    }, allow_nan=False).encode()
    parts = [struct.pack(HEADER_FMT, len(header)), header]
    parts.extend(b.tobytes() for b in buffers)
    return b"".join(parts)


def read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def decode_tree(node, arrays, resolve_handle=None):
    """Trusting decoder, used only by the worker for the grader's requests."""
    if isinstance(node, list):
        return [decode_tree(v, arrays, resolve_handle) for v in node]
    if isinstance(node, dict):
        if "$nd" in node:
            return arrays[node["$nd"]]
        if "$tensor" in node:
            import torch

            t = torch.from_numpy(arrays[node["$tensor"]])
            return t.to(node.get("device", "cpu")).requires_grad_(node.get("requires_grad", False))
        if "$tuple" in node:
            return tuple(decode_tree(v, arrays, resolve_handle) for v in node["$tuple"])
        if "$dict" in node:
            return {k: decode_tree(v, arrays, resolve_handle) for k, v in node["$dict"]}
        if "$float" in node:
            return float(node["$float"])
        if "$bigint" in node:
            return int(node["$bigint"])
        if "$handle" in node:
            return resolve_handle(node["$handle"])
        raise ValueError(f"unknown node {sorted(node)}")
    return node


def read_request(read) -> tuple[dict, list]:
    """One framed request, read with ``read(n) -> bytes`` (the grader is trusted here)."""
    import numpy as np

    (hlen,) = struct.unpack(HEADER_FMT, read(4))
    header = json.loads(read(hlen))
    arrays = []
    for spec in header["buffers"]:
        dtype = np.dtype(spec["dtype"])
        n = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
        arrays.append(np.frombuffer(bytearray(read(n)), dtype=dtype).reshape(spec["shape"]))
    return header, arrays
