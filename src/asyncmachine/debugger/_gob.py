"""A decoder of Go's encoding/gob stream format, into plain Python values.

The format (documented with Go's `encoding/gob` package) is a sequence of
length-prefixed messages. A message holds either a type definition (a
negative type id followed by a `wireType` value) or a value (a positive type
id followed by the value's encoding). The decoder needs no Go types: it reads
the stream's own type definitions.

Values become: `dict` per struct (keyed by Go field names; fields sent as
zero values are absent), `list` for slices and arrays, `dict` for maps,
`int`, `float`, `complex`, `bool`, `str`, `bytes`; interface values become
`GobInterface` (the registered name and the concrete value) or `None`;
`time.Time` becomes an aware UTC `datetime`; other GobEncoder /
BinaryMarshaler / TextMarshaler types stay `bytes`.

See docs/debugger.md, "Go sessions".
"""

from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GobDecodeError",
    "GobInterface",
    "GobType",
    "decode_gob",
    "go_time",
]

MAX_DEPTH = 100
"""Deepest nesting of values (and of type definitions) the decoder accepts."""
MAX_MESSAGE = 1 << 30
"""Largest message length accepted (Go's own decoder limit)."""

# predefined type ids of the format
_BOOL, _INT, _UINT, _FLOAT, _BYTES, _STRING, _COMPLEX, _INTERFACE = range(1, 9)
_WIRE_TYPE = 16
_PRIMITIVES = {
    _BOOL: "bool",
    _INT: "int",
    _UINT: "uint",
    _FLOAT: "float",
    _BYTES: "bytes",
    _STRING: "string",
    _COMPLEX: "complex",
    _INTERFACE: "interface",
}


class GobDecodeError(ValueError):
    """Truncated, corrupt or unsupported gob input; the message names the offset."""


@dataclass(frozen=True)
class GobInterface:
    """A non-nil Go interface value: the registered concrete type name and value."""

    name: str
    """The name the concrete type was registered under (`gob.Register`)."""
    value: Any
    """The decoded concrete value."""


@dataclass
class GobType:
    """A type defined by the stream (the decoded `wireType`)."""

    id: int
    """The type id."""
    kind: str
    """One of: array, slice, struct, map, gob_encoder, binary_marshaler, text_marshaler."""
    name: str
    """The Go type name (may be empty)."""
    elem: int = 0
    """Element type id (array, slice, map)."""
    key: int = 0
    """Key type id (map)."""
    length: int = 0
    """Array length."""
    fields: list[tuple[str, int]] = field(default_factory=list)
    """Struct fields, in order: (name, type id)."""


class _Buf:
    """Bytes with a read position; `end` bounds the current message."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end

    def fail(self, what: str) -> GobDecodeError:
        return GobDecodeError(f"gob: {what} at offset {self.pos}")

    def byte(self, what: str) -> int:
        if self.pos >= self.end:
            raise self.fail(f"unexpected end of data reading {what}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise self.fail(f"unexpected end of data reading {what} ({n} bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, what: str = "unsigned integer") -> int:
        pos = self.pos
        if pos < self.end:
            b = self.data[pos]
            if b < 0x80:  # the common one-byte case
                self.pos = pos + 1
                return b
        b = self.byte(what)
        if b < 0x80:
            return b
        n = 256 - b
        if n > 8:
            self.pos -= 1
            raise self.fail(f"invalid {what}: byte count {n} > 8")
        return int.from_bytes(self.take(n, what), "big")

    def sint(self, what: str = "signed integer") -> int:
        u = self.uint(what)
        return ~(u >> 1) if u & 1 else u >> 1

    def flt(self, what: str = "float") -> float:
        u = self.uint(what)
        # the float64 bits are sent byte-reversed
        bits = int.from_bytes(u.to_bytes(8, "little"), "big")
        return float(struct.unpack(">d", bits.to_bytes(8, "big"))[0])

    def count(self, what: str) -> int:
        n = self.uint(what)
        if n > self.end - self.pos:
            raise self.fail(
                f"{what} {n} exceeds the remaining {self.end - self.pos} bytes"
            )
        return n


def go_time(raw: bytes) -> _dt.datetime:
    """Decode time.Time's MarshalBinary form.

    Go streams may leave the type unnamed, so callers that know a field is a
    time.Time decode its bytes with this.
    """
    # versions 1 and 2: seconds since year 1, nanoseconds, zone offset
    if len(raw) not in (15, 16) or raw[0] not in (1, 2):
        raise GobDecodeError(f"gob: unsupported time.Time encoding ({len(raw)} bytes)")
    sec = int.from_bytes(raw[1:9], "big", signed=True)  # since year 1
    nsec = int.from_bytes(raw[9:13], "big")
    base = _dt.datetime(1, 1, 1, tzinfo=_dt.UTC)
    try:
        return base + _dt.timedelta(seconds=sec, microseconds=nsec // 1000)
    except OverflowError as e:
        raise GobDecodeError(f"gob: time.Time out of range ({sec} s)") from e


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.types: dict[int, GobType] = {}

    # type definitions

    def _common(self, buf: _Buf, depth: int) -> tuple[str, int]:
        v = self._struct_fields(buf, [("Name", _STRING), ("Id", _INT)], depth)
        return str(v.get("Name", "")), int(v.get("Id", 0))

    def _struct_fields(
        self, buf: _Buf, fields: list[tuple[str, int | str]], depth: int
    ) -> dict[str, Any]:
        """A struct of the bootstrap wire types; `str` type ids name sub-parsers."""
        out: dict[str, Any] = {}
        num = -1
        while True:
            delta = buf.uint("field delta")
            if delta == 0:
                return out
            num += delta
            if num >= len(fields):
                raise buf.fail(f"field number {num} out of range in a type definition")
            name, tid = fields[num]
            if tid == "common":
                out[name] = self._common(buf, depth + 1)
            elif tid == "fields":
                n = buf.count("field count")
                out[name] = [
                    self._struct_fields(
                        buf, [("Name", _STRING), ("Id", _INT)], depth + 1
                    )
                    for _ in range(n)
                ]
            elif isinstance(tid, str):
                out[name] = self._struct_fields(buf, _WIRE_PARTS[tid], depth + 1)
            else:
                out[name] = self._primitive(buf, tid)

    def _define(self, buf: _Buf, tid: int) -> None:
        if tid < 65 or tid in self.types:
            raise buf.fail(f"type id {tid} redefined or reserved")
        wire = self._struct_fields(buf, _WIRE_PARTS["wire"], 0)
        if len(wire) != 1:
            raise buf.fail(f"type definition {tid} has {len(wire)} kinds, want 1")
        kind, part = next(iter(wire.items()))
        name, _ = part.get("Common", ("", 0))
        t = GobType(id=tid, kind=kind, name=name)
        if kind in ("array", "slice", "map"):
            t.elem = int(part.get("Elem", 0))
        if kind == "array":
            t.length = int(part.get("Len", 0))
        if kind == "map":
            t.key = int(part.get("Key", 0))
        if kind == "struct":
            t.fields = [
                (str(f.get("Name", "")), int(f.get("Id", 0)))
                for f in part.get("Field", [])
            ]
        self.types[tid] = t

    # values

    def _primitive(self, buf: _Buf, tid: int) -> Any:
        if tid == _BOOL:
            u = buf.uint("bool")
            if u > 1:
                raise buf.fail(f"invalid bool {u}")
            return u == 1
        if tid == _INT:
            return buf.sint()
        if tid == _UINT:
            return buf.uint()
        if tid == _FLOAT:
            return buf.flt()
        if tid == _COMPLEX:
            return complex(
                buf.flt("complex real part"), buf.flt("complex imaginary part")
            )
        if tid == _BYTES:
            return buf.take(buf.count("byte slice length"), "byte slice")
        if tid == _STRING:
            raw = buf.take(buf.count("string length"), "string")
            try:
                return raw.decode()
            except UnicodeDecodeError:
                return raw.decode(errors="surrogateescape")
        raise buf.fail(f"unknown type id {tid}")

    def _value(self, buf: _Buf, tid: int, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise buf.fail(f"values nested deeper than {MAX_DEPTH}")
        if tid == _STRING:  # the commonest, first
            raw = buf.take(buf.count("string length"), "string")
            try:
                return raw.decode()
            except UnicodeDecodeError:
                return raw.decode(errors="surrogateescape")
        if tid == _INTERFACE:
            return self._interface(buf, depth)
        if tid in _PRIMITIVES:
            return self._primitive(buf, tid)
        t = self.types.get(tid)
        if t is None:
            raise buf.fail(f"undefined type id {tid}")
        kind = t.kind
        if kind == "struct":
            return self._struct(buf, t, depth)
        if kind in ("slice", "array"):
            n = buf.count("slice length" if kind == "slice" else "array length")
            if kind == "array" and n != t.length:
                raise buf.fail(f"array length {n}, type {t.name!r} wants {t.length}")
            elem, depth = t.elem, depth + 1
            if elem in (_UINT, _INT):  # clocks, indexes
                prim = buf.uint if elem == _UINT else buf.sint
                return [prim() for _ in range(n)]
            value = self._value
            return [value(buf, elem, depth) for _ in range(n)]
        if kind == "map":
            n = buf.count("map length")
            out: dict[Any, Any] = {}
            for _ in range(n):
                k = self._value(buf, t.key, depth + 1)
                out[_hashable(k)] = self._value(buf, t.elem, depth + 1)
            return out
        raw = buf.take(buf.count("marshaled data length"), "marshaled data")
        if t.name in ("time.Time", "Time") and t.kind in (
            "gob_encoder",
            "binary_marshaler",
        ):
            return go_time(raw)
        return raw

    def _struct(self, buf: _Buf, t: GobType, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        num = -1
        fields, nfields = t.fields, len(t.fields)
        uint, value, depth = buf.uint, self._value, depth + 1
        while True:
            delta = uint("field delta")
            if delta == 0:
                return out
            num += delta
            if num >= nfields:
                raise buf.fail(f"field number {num} out of range for struct {t.name!r}")
            name, ftid = fields[num]
            out[name] = value(buf, ftid, depth)

    def _single(self, buf: _Buf, tid: int, depth: int) -> Any:
        """A top-level or interface value: non-structs follow a 0 field delta."""
        t = self.types.get(tid)
        if t is not None and t.kind == "struct":
            return self._struct(buf, t, depth)
        if buf.uint("singleton delta") != 0:
            raise buf.fail("non-zero delta before a non-struct value")
        return self._value(buf, tid, depth)

    def _interface(self, buf: _Buf, depth: int) -> GobInterface | None:
        raw = buf.take(buf.count("interface name length"), "interface name")
        if not raw:
            return None
        name = raw.decode(errors="replace")
        # a type sequence: definitions (each but the first count-delimited), then the id
        while True:
            tid = buf.sint("interface type id")
            if tid >= 0:
                break
            self._define(buf, -tid)
            if buf.pos < buf.end:
                buf.uint("delimited type definition length")
        buf.count("interface value length")
        return GobInterface(name, self._single(buf, tid, depth + 1))

    def values(self) -> list[Any]:
        out: list[Any] = []
        pos, size = 0, len(self.data)
        while pos < size:
            head = _Buf(self.data, pos, size)
            n = head.uint("message length")
            if n > MAX_MESSAGE or n > size - head.pos:
                raise head.fail(
                    f"message length {n} exceeds the remaining {size - head.pos} bytes"
                )
            if n == 0:
                raise head.fail("empty message")
            buf = _Buf(self.data, head.pos, head.pos + n)
            pos = buf.end
            tid = buf.sint("type id")
            if tid < 0:
                self._define(buf, -tid)
                if buf.pos != buf.end:
                    raise buf.fail("extra data after a type definition")
                continue
            out.append(self._single(buf, tid, 0))
            if buf.pos != buf.end:
                raise buf.fail(f"{buf.end - buf.pos} bytes left over in a message")
        return out


_COMMON = ("Common", "common")
_WIRE_PARTS: dict[str, list[tuple[str, int | str]]] = {
    # wireType: one of its fields is set
    "wire": [
        ("array", "array"),
        ("slice", "slice"),
        ("struct", "struct"),
        ("map", "map"),
        ("gob_encoder", "encoder"),
        ("binary_marshaler", "encoder"),
        ("text_marshaler", "encoder"),
    ],
    "array": [_COMMON, ("Elem", _INT), ("Len", _INT)],
    "slice": [_COMMON, ("Elem", _INT)],
    "struct": [_COMMON, ("Field", "fields")],
    "map": [_COMMON, ("Key", _INT), ("Elem", _INT)],
    "encoder": [_COMMON],
}


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def decode_gob(data: bytes) -> list[Any]:
    """Decode every value of a gob stream, in order (type definitions are consumed).

    Args:
        data: the whole stream.

    Returns:
        The decoded values.

    Raises:
        GobDecodeError: on truncated, corrupt or unsupported input.
    """
    return _Decoder(bytes(data)).values()
