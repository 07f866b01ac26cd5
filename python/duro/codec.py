"""How values become bytes in the journal.

JSON is the default: journals stay readable and reading one never runs
code. :class:`PickleCodec` exists for values JSON cannot hold; it is an
explicit opt-in because unpickling executes code from the store.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, runtime_checkable

from ._core import CorruptionError


@runtime_checkable
class Codec(Protocol):
    name: str

    def encode(self, value: Any) -> bytes:
        """Raise TypeError or ValueError for values it cannot encode."""
        ...

    def decode(self, data: bytes) -> Any: ...


class JsonCodec:
    """JSON-compatible values: dict (str keys), list, tuple (read back as list), str, int, float, bool, None.

    Encoding is on every step's hot path, so the C encoder is built once
    (``json.JSONEncoder.encode`` builds it on every call) and plain scalars
    skip it. Cycles are not checked up front: they end in ``RecursionError``,
    which the engine reports as a :class:`duro.SerializationError`.
    """

    name = "json"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
        )
        self._decoder = json.JSONDecoder()
        c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
        self._iterencode = (
            c_make_encoder(
                None,
                self._encoder.default,
                json.encoder.encode_basestring,
                None,
                ":",
                ",",
                False,
                False,
                False,
            )
            if c_make_encoder is not None
            else None
        )

    def encode(self, value: Any) -> bytes:
        kind = type(value)
        if kind is str:
            return json.encoder.encode_basestring(value).encode("utf-8")
        if kind is int:
            return int.__repr__(value).encode("ascii")
        if value is None:
            return b"null"
        if kind is bool:
            return b"true" if value else b"false"
        if self._iterencode is None or kind is float:
            return self._encoder.encode(value).encode("utf-8")
        return "".join(self._iterencode(value, 0)).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        """Raises :class:`duro.CorruptionError` for bytes that are not a JSON value (stored
        garbage), never a bare ``ValueError``/``UnicodeDecodeError``/``RecursionError``."""
        if not data:
            return None
        try:
            return self._decoder.decode(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise CorruptionError(
                f"a stored value of {len(data)} bytes is not valid JSON for the json codec: {exc}"
            ) from exc


class PickleCodec:
    """Any picklable value. Opt-in only: reading a journal then runs pickle, so
    only use it with stores nobody else can write to."""

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self._protocol = protocol

    def encode(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=self._protocol)
        except (pickle.PicklingError, AttributeError) as exc:
            raise TypeError(str(exc)) from exc

    def decode(self, data: bytes) -> Any:
        if not data:
            return None
        return pickle.loads(data)
