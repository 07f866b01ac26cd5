"""How values become bytes in the journal.

JSON is the default: journals stay readable and reading one never runs
code. :class:`PickleCodec` exists for values JSON cannot hold; it is an
explicit opt-in because unpickling executes code from the store.
"""

from __future__ import annotations

import enum
import json
import pickle
import uuid
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

    Also ``uuid.UUID`` (recorded as its string) and ``enum.Enum`` members
    (recorded as their value); read back as what was recorded.

    Encoding is on every step's hot path. orjson (about ten times faster than
    the standard library here) encodes what it can encode exactly as the
    standard library would read it; everything else goes to the standard
    library's C encoder, which decides (and words the error): ints beyond 64
    bits, non-str keys, subclasses of the builtin types, nesting deeper than
    orjson's limit, types neither knows, and any output holding ``null``
    (orjson writes NaN and infinities as null, which JSON cannot hold: the
    standard library refuses them). Cycles are not checked up front: they end
    in ``RecursionError``, which the engine reports as a
    :class:`duro.SerializationError`. Without orjson installed, the standard
    library does everything, with the same results.
    """

    name = "json"

    def __init__(self) -> None:
        self._fast = None if _orjson is None else _orjson.dumps
        self._fast_loads = None if _orjson is None else _orjson.loads
        self._encoder = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False, default=_recorded_as
        )
        self._decoder = json.JSONDecoder()
        c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
        self._iterencode = (
            c_make_encoder(
                None,
                _recorded_as,
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
        fast = self._fast
        if fast is not None:
            try:
                raw: bytes = fast(value, default=_hand_over, option=_FAST_OPTIONS)
            except TypeError:  # orjson.JSONEncodeError: left to the standard library
                pass
            else:
                if b"null" not in raw:
                    # A copy of exactly its length: orjson's bytes keep about 4 KiB of
                    # spare capacity each, and a run keeps its outputs while it is in
                    # memory (10,000 sleeping runs held 3.6 KiB more each for their inputs).
                    return b"%b" % raw
        return self._standard_encode(value)

    def _standard_encode(self, value: Any) -> bytes:
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
        fast = self._fast_loads
        # orjson reads an integer outside -2**63..2**64-1 as a float: such bytes (any run of 19
        # digits, also inside a string) go to the standard library, as does anything
        # orjson refuses (it then words the error, or reads what orjson would not).
        if fast is not None and _DIGIT_RUN not in data.translate(_DIGITS_AS_ZERO):
            try:
                return fast(data)
            except ValueError:  # orjson.JSONDecodeError
                pass
        try:
            return self._decoder.decode(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise CorruptionError(
                f"a stored value of {len(data)} bytes is not valid JSON for the json codec: {exc}"
            ) from exc


def _recorded_as(value: Any) -> Any:
    """The standard library encoder's hook: what a UUID or an enum member is recorded as
    (what orjson writes for them); any other type is refused."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _hand_over(value: Any) -> Any:
    """orjson's hook: every type orjson does not encode itself goes to the standard library."""
    raise TypeError(type(value).__name__)


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; without it the standard library does it all
    _orjson = None  # type: ignore[assignment]
    _FAST_OPTIONS = 0
else:
    # Dataclasses, datetimes and subclasses of the builtin types go to the hook (and so to
    # the standard library), which treats them as it always did.
    _FAST_OPTIONS = _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_SUBCLASS

#: Every digit as b"0", every other byte as b".": a run of 19 digits becomes _DIGIT_RUN,
#: found by a substring search (six times faster than a regular expression here).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_DIGIT_RUN = b"0" * 19


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
