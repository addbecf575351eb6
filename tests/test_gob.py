"""The gob decoder against byte strings built by hand from the format's rules."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from asyncmachine.debugger import GobDecodeError, GobInterface, decode_gob, go_time


def u(n: int) -> bytes:
    """Gob unsigned integer: one byte below 128, else -count then big-endian bytes."""
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([256 - len(raw)]) + raw


def i(n: int) -> bytes:
    """Gob signed integer: sign in the low bit, complemented when negative."""
    return u((~n << 1) | 1 if n < 0 else n << 1)


def f(x: float) -> bytes:
    """Gob float: the float64 bits byte-reversed, sent as an unsigned integer."""
    return u(int.from_bytes(struct.pack(">d", x)[::-1], "big"))


def s(text: str) -> bytes:
    raw = text.encode()
    return u(len(raw)) + raw


def msg(body: bytes) -> bytes:
    return u(len(body)) + body


def common(name: str, tid: int) -> bytes:
    # CommonType{Name, Id}: field deltas 1 and 1, then end
    return (u(1) + s(name) if name else b"") + u(1 if name else 2) + i(tid) + u(0)


def struct_def(tid: int, name: str, fields: list[tuple[str, int]]) -> bytes:
    # wireType field 2 (StructT): structType{CommonType, Field []fieldType}
    body = u(1) + common(name, tid) + u(1) + u(len(fields))
    for fname, ftid in fields:
        body += u(1) + s(fname) + u(1) + i(ftid) + u(0)
    body += u(0)
    return msg(i(-tid) + u(3) + body + u(0))


def slice_def(tid: int, elem: int) -> bytes:
    # wireType field 1 (SliceT): sliceType{CommonType, Elem}
    return msg(i(-tid) + u(2) + u(1) + common("", tid) + u(1) + i(elem) + u(0) + u(0))


def map_def(tid: int, key: int, elem: int) -> bytes:
    # wireType field 3 (MapT): mapType{CommonType, Key, Elem}
    body = u(1) + common("", tid) + u(1) + i(key) + u(1) + i(elem) + u(0)
    return msg(i(-tid) + u(4) + body + u(0))


def encoder_def(tid: int, name: str) -> bytes:
    # wireType field 4 (GobEncoderT): gobEncoderType{CommonType}
    return msg(i(-tid) + u(5) + u(1) + common(name, tid) + u(0) + u(0))


INT, UINT, FLOAT, BYTES, STRING, INTERFACE = 2, 3, 4, 5, 6, 8


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (b"\x00", 0),
        (b"\x7f", 127),
        (b"\xff\x80", 128),
        (b"\xfe\x01\x00", 256),
        (b"\xf8" + b"\xff" * 8, 2**64 - 1),
    ],
)
def test_uint_examples_of_the_spec(raw: bytes, want: int) -> None:
    assert u(want) == raw
    assert decode_gob(msg(i(UINT) + b"\x00" + raw)) == [want]


@pytest.mark.parametrize("n", [0, 1, -1, 63, -64, 64, -129, 2**62, -(2**63)])
def test_signed_ints(n: int) -> None:
    assert decode_gob(msg(i(INT) + b"\x00" + i(n))) == [n]


def test_signed_int_bytes_of_the_spec() -> None:
    # the spec: -129 is sent as 0xFE 0x01 0x01
    assert i(-129) == b"\xfe\x01\x01"


@pytest.mark.parametrize("x", [0.0, 17.0, -2.5, 1e300, 0.1])
def test_floats_are_byte_reversed(x: float) -> None:
    assert decode_gob(msg(i(FLOAT) + b"\x00" + f(x))) == [x]
    assert f(17.0) == b"\xfe\x31\x40"  # the spec's example


def test_strings_bytes_and_several_messages() -> None:
    data = msg(i(STRING) + b"\x00" + s("héllo")) + msg(
        i(BYTES) + b"\x00" + u(3) + b"\x00\x01\x02"
    )
    assert decode_gob(data) == ["héllo", b"\x00\x01\x02"]


def point_stream() -> bytes:
    # type Point struct { X, Y int; Name string }; value Point{X: 0, Y: 7, Name: "p"}
    defs = struct_def(65, "Point", [("X", INT), ("Y", INT), ("Name", STRING)])
    # X is zero, so it is left out: the first delta jumps to field 1
    value = msg(i(65) + u(2) + i(7) + u(1) + s("p") + u(0))
    return defs + value


def test_struct_with_field_deltas_and_omitted_zero() -> None:
    assert decode_gob(point_stream()) == [{"Y": 7, "Name": "p"}]


def test_nested_slices_maps_and_structs() -> None:
    # type Inner struct { V int }; type Outer struct { L []Inner; M map[string][]int }
    data = (
        struct_def(65, "Inner", [("V", INT)])
        + slice_def(66, 65)
        + slice_def(67, INT)
        + map_def(68, STRING, 67)
        + struct_def(69, "Outer", [("L", 66), ("M", 68)])
    )
    inner = [u(1) + i(3) + u(0), u(0)]  # {V: 3}, {} (zero struct)
    m = u(2) + s("a") + u(2) + i(1) + i(-2) + s("b") + u(0)
    value = u(1) + u(2) + b"".join(inner) + u(1) + m + u(0)
    data += msg(i(69) + value)
    assert decode_gob(data) == [{"L": [{"V": 3}, {}], "M": {"a": [1, -2], "b": []}}]


def test_interface_values() -> None:
    # type Box struct { Any interface{} }, holding a registered "main.P" (struct)
    # with its type defined inline, then a nil interface
    data = struct_def(65, "Box", [("Any", INTERFACE)])
    pdef = struct_def(66, "P", [("N", INT)])  # a delimited type definition
    concrete = u(1) + i(5) + u(0)
    # a type sequence: the first definition without its count, a count after
    # each definition (skipped), then the id and the delimited value
    assert pdef[0] == len(pdef) - 1
    rest = i(66) + u(len(concrete)) + concrete
    iface = s("main.P") + pdef[1:] + u(len(rest)) + rest
    data += msg(i(65) + u(1) + iface + u(0))
    # a non-struct concrete value (int) is preceded by a 0 delta
    iface2 = s("int") + i(INT) + u(2) + b"\x00" + i(9)
    data += msg(i(65) + u(1) + iface2 + u(0))
    data += msg(i(65) + u(0))  # nil interface field is omitted entirely
    assert decode_gob(data) == [
        {"Any": GobInterface("main.P", {"N": 5})},
        {"Any": GobInterface("int", 9)},
        {},
    ]


def go_time_bytes(when: dt.datetime) -> bytes:
    delta = when - dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    sec = delta.days * 86400 + delta.seconds
    # version 1, seconds since year 1, nanoseconds, zone offset in minutes (-1: UTC)
    return (
        b"\x01"
        + sec.to_bytes(8, "big")
        + (delta.microseconds * 1000).to_bytes(4, "big")
        + b"\xff\xff"
    )


def test_time_and_unknown_encoders() -> None:
    when = dt.datetime(2024, 7, 22, 13, 29, 29, 723209, tzinfo=dt.UTC)
    raw = go_time_bytes(when)
    assert go_time(raw) == when
    data = encoder_def(65, "time.Time") + encoder_def(66, "big.Int")
    data += struct_def(67, "T", [("At", 65), ("N", 66)])
    data += msg(i(67) + u(1) + u(len(raw)) + raw + u(1) + u(2) + b"\x02\x01" + u(0))
    assert decode_gob(data) == [{"At": when, "N": b"\x02\x01"}]
    with pytest.raises(GobDecodeError, match="unsupported time"):
        go_time(b"\x07")


def test_truncated_at_every_offset_raises_a_clear_error() -> None:
    data = point_stream()
    defs = len(struct_def(65, "Point", [("X", INT), ("Y", INT), ("Name", STRING)]))
    assert decode_gob(data[:defs]) == []  # whole messages: only definitions
    for cut in range(1, len(data)):
        if cut == defs:
            continue
        with pytest.raises(GobDecodeError, match="offset"):
            decode_gob(data[:cut])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (msg(i(70) + u(0)), "undefined type id 70"),
        (b"\xf7" + b"\x00" * 9, "byte count 9 > 8"),
        (msg(i(INT) + b"\x01" + i(3)), "non-zero delta"),
        (
            struct_def(65, "P", [("X", INT)]) + msg(i(65) + u(9) + u(0)),
            "field number 8 out of range",
        ),
        (msg(i(STRING) + b"\x00" + u(100) + b"ab"), "exceeds the remaining"),
        (msg(i(INT) + b"\x00" + i(1) + b"\x00"), "left over"),
        (struct_def(65, "A", []) + struct_def(65, "B", []), "redefined"),
    ],
)
def test_corrupt_input(data: bytes, match: str) -> None:
    with pytest.raises(GobDecodeError, match=match):
        decode_gob(data)


def test_deep_nesting_is_bounded() -> None:
    # type L []L: a slice of itself, nested deeper than the limit
    data = slice_def(65, 65)
    depth = 150
    data += msg(i(65) + b"\x00" + b"\x01" * depth + b"\x00")
    with pytest.raises(GobDecodeError, match="nested deeper"):
        decode_gob(data)
    assert decode_gob(slice_def(65, 65) + msg(i(65) + b"\x00\x01\x01\x00")) == [[[[]]]]


def test_gob_decode_error_is_a_value_error() -> None:
    assert issubclass(GobDecodeError, ValueError)
