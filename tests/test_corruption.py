"""Damaged stored data gives a typed error, never a wrong value or a stray exception.

- A flipped byte inside a committed log record (not in the tail: a valid record follows
  it) makes ``duro.Engine(path)`` refuse to open with :class:`duro.CorruptionError`
  naming the segment file and the record's offset.
- The default JSON codec's ``decode`` on arbitrary bytes returns a value or raises a
  typed duro error (what a journal holding garbage gives), never another exception.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import duro
from duro.codec import JsonCodec

# The log's layout (rust/duro-wal/src/format.rs): a 32-byte segment header, then records
# of a 24-byte header (payload length u32 LE first), the payload and a 4-byte CRC32C.
SEGMENT_HEADER = 32
RECORD_HEADER = 24
RECORD_TRAILER = 4


def records(segment: bytes) -> List[Tuple[int, int]]:
    """(offset, payload length) of each record in a segment, up to the first zero header."""
    found = []
    offset = SEGMENT_HEADER
    while offset + RECORD_HEADER <= len(segment):
        header = segment[offset : offset + RECORD_HEADER]
        if header == bytes(RECORD_HEADER):
            break
        (length,) = struct.unpack_from("<I", header)
        if offset + RECORD_HEADER + length + RECORD_TRAILER > len(segment):
            break
        found.append((offset, length))
        offset += RECORD_HEADER + length + RECORD_TRAILER
    return found


def test_a_damaged_log_record_is_refused_naming_file_and_offset(tmp_path: Path, name: str) -> None:
    path = tmp_path / "store"
    flow = duro.workflow(name).step("a", lambda i: {"a": i}).step("b", lambda i: {"b": i})
    with duro.Engine(str(path)) as engine:
        for k in range(4):
            assert flow.run(k, engine=engine).result(timeout=30).status == "completed"

    # The second record of the first segment holding at least three: damaged data that
    # valid records follow (corruption, not a torn tail that recovery may truncate).
    damaged = None
    for segment in sorted((path / "wal").glob("*.wal")):
        data = segment.read_bytes()
        found = records(data)
        if len(found) >= 3:
            offset, length = found[1]
            assert length > 0
            flipped = bytearray(data)
            flipped[offset + RECORD_HEADER + length // 2] ^= 0x01
            segment.write_bytes(bytes(flipped))
            damaged = (segment, offset)
            break
    assert damaged is not None, "no log segment with three committed records"
    segment, offset = damaged

    with pytest.raises(duro.CorruptionError) as info:
        duro.Engine(str(path))
    message = str(info.value)
    assert str(segment) in message, message
    assert f"offset {offset}" in message, message
    assert isinstance(info.value, duro.StoreError)

    # Refused every time (nothing was discarded or repaired behind the user's back).
    with pytest.raises(duro.CorruptionError):
        duro.Engine(str(path))


CODEC = JsonCodec()


def _check_decode(data: bytes) -> None:
    try:
        CODEC.decode(data)
    except duro.DuroError:
        pass  # A typed error: what stored garbage must give.


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_json_decode_of_arbitrary_bytes_gives_a_value_or_a_typed_error(data: bytes) -> None:
    _check_decode(data)


@settings(max_examples=500, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    ).map(lambda v: __import__("json").dumps(v).encode()),
    st.integers(min_value=0, max_value=64),
    st.binary(min_size=1, max_size=4),
)
def test_json_decode_of_damaged_json_gives_a_value_or_a_typed_error(valid: bytes, at: int, junk: bytes) -> None:
    """Near-valid input reaches deeper into the decoder than random bytes do."""
    at = min(at, len(valid))
    _check_decode(valid[:at] + junk + valid[at + len(junk) :])


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",  # not UTF-8
        b"{",  # truncated
        b"[" * 100_000,  # nested beyond the recursion limit
        b"NaN",  # accepted by Python's json: a value
        b'{"a": 1} trailing',
        b"\x00",
    ],
)
def test_json_decode_edge_cases(data: bytes) -> None:
    _check_decode(data)


def test_a_decode_error_says_what_it_is() -> None:
    with pytest.raises(duro.CorruptionError, match="JSON"):
        CODEC.decode(b"\xff not json")
