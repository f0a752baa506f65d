"""The grader's decoder is the trust boundary: malformed replies are refused before allocation."""
import json
import struct

import numpy as np
import pytest

from autograder import wire
from autograder.codec import encode_tree, frame


def reader(data: bytes):
    view = memoryview(data)
    pos = [0]

    def read_exact(n):
        chunk = bytes(view[pos[0]:pos[0] + n])
        if len(chunk) < n:
            raise EOFError
        pos[0] += n
        return chunk
    return read_exact


def raw(header: dict, payload: bytes = b"") -> bytes:
    body = json.dumps(header).encode()
    return struct.pack("<I", len(body)) + body + payload


def test_valid_message_round_trips():
    buffers = []
    tree = encode_tree({"a": (np.eye(2), 1.5, float("nan"))}, buffers)
    msg = wire.read_message(reader(frame({"ok": True, "value": tree}, buffers)))
    a = msg["value"]["a"]
    np.testing.assert_array_equal(a[0], np.eye(2))
    assert a[1] == 1.5 and np.isnan(a[2])


@pytest.mark.parametrize("spec, why", [
    ({"dtype": "|O", "shape": [1]}, "not allowed"),
    ({"dtype": "<f8", "shape": [1] * 9}, "shape"),
    ({"dtype": "<f8", "shape": [-1]}, "shape"),
    ({"dtype": "<f8", "shape": [1 << 40]}, "too large"),
])
def test_bad_buffers_are_refused(spec, why):
    data = raw({"msg": {"ok": True, "value": {"$nd": 0}}, "buffers": [spec]})
    with pytest.raises(wire.ProtocolError, match=why):
        wire.read_message(reader(data))


def test_huge_header_is_refused_before_reading():
    data = struct.pack("<I", 1 << 30)
    with pytest.raises(wire.ProtocolError, match="exceeds the cap"):
        wire.read_message(reader(data))


@pytest.mark.parametrize("value", [{"$nd": 5}, {"$pickle": "x"}, {"__class__": "x"},
                                   {"$float": "1e999x"}])
def test_unknown_or_dangling_nodes_are_refused(value):
    with pytest.raises(wire.ProtocolError):
        wire.read_message(reader(raw({"msg": {"ok": True, "value": value}, "buffers": []})))


def test_ordered_and_default_dicts_arrive_as_plain_dicts():
    """A returned history such as defaultdict(list) is a dict, as the contracts say."""
    import collections

    history = collections.defaultdict(list)
    history["d_loss"].append(0.5)
    value = collections.OrderedDict(w=np.ones(2))
    for given, key in ((history, "d_loss"), (value, "w")):
        buffers: list = []
        tree = encode_tree(given, buffers)
        decoded = wire.read_message(reader(frame({"ok": True, "value": tree}, buffers)))
        assert type(decoded["value"]) is dict and list(decoded["value"]) == [key]


def test_subclasses_are_not_plain_data():
    class Liar(np.ndarray):
        def __eq__(self, other):
            return True

    with pytest.raises(Exception, match="Liar"):
        encode_tree(np.zeros(2).view(Liar), [])
