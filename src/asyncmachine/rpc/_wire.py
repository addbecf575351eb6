"""The aRPC wire format: length-prefixed msgpack frames, versioned.

A frame is a 4-byte big-endian length followed by that many bytes of one
msgpack value, always an array whose first item is the message kind. The
protocol version travels in both hellos; a peer speaking another version
is refused. The handshake and its proofs are specified in docs/rpc.md
("Wire format"); this module is the reference implementation.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from typing import Any, Final

import anyio
import anyio.abc
import attrs

try:
    import msgpack  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "asyncmachine.rpc needs msgpack: pip install 'asyncmachine[rpc]'"
    ) from exc

__all__ = [
    "AuthError",
    "DeniedError",
    "FrameReader",
    "NotConnectedError",
    "Payload",
    "ProtocolError",
    "RemoteError",
    "RpcError",
    "SchemaMismatchError",
    "TLSError",
    "VersionError",
    "checksum",
    "schema_hash",
]

PROTOCOL_VERSION: Final = 3
DEFAULT_MAX_FRAME: Final = 1 << 20
PRE_AUTH_MAX_FRAME: Final = 1024
"""The largest frame either side accepts before the handshake is done."""
NONCE_SIZE: Final = 32
MAX_LABEL: Final = 128
"""The longest client label (characters) a server keeps."""
_HEADER = struct.Struct(">I")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_MAC_CONTEXT: Final = b"asyncmachine-rpc"
_SUM_MASK: Final = 0xFFFFFFFF

# message kinds
S_HELLO: Final = 0  # server: [kind, version, server_nonce, server_proof|None]
# client: [kind, version, client_nonce, label, schema_hash, max_frame]
C_HELLO: Final = 1
# server: [kind, session_id, source_id, max_frame, time, checksum, queue_tick]
WELCOME: Final = 2
ERROR: Final = 3  # both: [kind, code, message]
MUTATE: Final = 4  # client: [kind, call_id, op, [states], args]
# server: [kind, call_id, result, [index, tick, ...], checksum, queue_tick]
RESULT: Final = 5
UPDATE: Final = 6  # server: [kind, [index, tick, ...], checksum, queue_tick]
SYNC: Final = 7  # client: [kind]
FULL: Final = 8  # server: [kind, time, checksum, queue_tick]
PING: Final = 9  # client: [kind, n]
PONG: Final = 10  # server: [kind, n]
PAYLOAD: Final = 11  # server: [kind, name, source, data, token]
AUTH: Final = 12  # client: [kind, client_proof|None]
REFUSED: Final = 13  # server: [kind, call_id, code]

# mutation ops of MUTATE
OP_ADD, OP_REMOVE, OP_SET, OP_CAN_ADD, OP_CAN_REMOVE = 0, 1, 2, 3, 4
OP_MAX: Final = OP_CAN_REMOVE

ERROR_MESSAGES: Final = {
    "protocol": "the message breaks the protocol",
    "args": "the mutation's args were refused",
    "schema": "schema mismatch: the client's schema does not match the source's",
    "auth": "authentication failed",
    "version": f"the server speaks protocol version {PROTOCOL_VERSION}",
    "timeout": "the peer took too long",
    "slow": "the client reads too slowly",
    "busy": "too many connections",
    "tls": "the server requires TLS",
    "internal": "internal server error",
}
"""The fixed text an ERROR frame carries for each code: details of what
went wrong stay in the server's log."""

REFUSAL_CODES: Final = ("denied", "read_only", "rate")
"""Codes of a REFUSED frame: one mutation was refused, the connection
stays."""


class RpcError(Exception):
    """Base of the aRPC errors."""


class ProtocolError(RpcError):
    """A peer sent something the protocol does not allow: garbage, a
    truncated or oversized frame, an unknown state, wrong args."""

    code = "protocol"


class SchemaMismatchError(RpcError):
    """The client's schema (state names and order) differs from the
    server's source machine."""

    code = "schema"


class AuthError(RpcError):
    """The shared secret did not match (or one side has none)."""

    code = "auth"


class TLSError(RpcError):
    """TLS failed: the certificate did not verify, or one side speaks TLS
    and the other does not."""

    code = "tls"

    def __init__(self, message: str, *, verify: bool = False) -> None:
        super().__init__(message)
        self.verify = verify
        """True for a certificate verification failure."""


class DeniedError(RpcError):
    """The server refused one mutation: the state is not allowed to this
    client (`denied`), the client is read-only (`read_only`) or over its
    mutation rate (`rate`). The connection stays; the source is unchanged."""

    def __init__(self, code: str, states: Sequence[str] = ()) -> None:
        what = " ".join(states)
        super().__init__(f"{code}: the server refused the mutation of {what}")
        self.code = code
        """denied, read_only or rate."""
        self.states: tuple[str, ...] = tuple(states)
        """The states of the refused call."""


class VersionError(RpcError):
    """The peer speaks another protocol version."""

    code = "version"


class RemoteError(RpcError):
    """The other side closed the connection with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        """The error's kind: protocol, schema, auth, version, slow, ..."""
        self.message = message
        """The remote side's explanation."""


class NotConnectedError(RpcError):
    """A remote call was made while the client has no connection."""


@attrs.frozen
class Payload:
    """Data a source machine sends to its clients through `SendPayload`.

    `data` must be plain data msgpack can carry (None, bool, int, float,
    str, bytes, lists and str-keyed dicts of those). An empty
    `destination` sends to every client, else to the client session of
    that id (`Server.sessions`, `Client.session_id`): the server assigns
    session ids, client names are only labels.
    """

    name: str
    """What the payload is, for the consumer."""
    data: Any = None
    """The content."""
    source: str = ""
    """Id of the sending machine (filled in by the server when empty)."""
    destination: str = ""
    """Session id of the receiving client, or "" for all."""
    token: str = ""
    """A random id of this delivery (filled in by the server)."""


def schema_hash(names: Sequence[str]) -> str:
    """A short hash of state names in order, compared at handshake."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def checksum(time: Sequence[int]) -> int:
    """The sum of all ticks (32 bits). Ticks never decrease, so a client
    that missed an update has a smaller sum than the server."""
    return sum(time) & _SUM_MASK


def transcript(
    version: int,
    client_nonce: bytes,
    server_nonce: bytes,
    label: str,
    schema_hash: str,
    max_frame: int,
) -> bytes:
    """The handshake transcript both proofs cover (see docs/rpc.md)."""

    def lp(data: bytes) -> bytes:
        return _U32.pack(len(data)) + data

    return b"".join(
        (
            lp(_MAC_CONTEXT),
            _U32.pack(version),
            lp(client_nonce),
            lp(server_nonce),
            lp(label.encode()),
            lp(schema_hash.encode()),
            _U64.pack(max_frame),
        )
    )


def proof(secret: bytes, role: bytes, transcript: bytes) -> bytes:
    """HMAC-SHA256 proof of the secret by `role` (b"server" or b"client")."""
    return hmac.new(secret, role + b"\x00" + transcript, hashlib.sha256).digest()


def proof_ok(secret: bytes, role: bytes, transcript: bytes, mac: object) -> bool:
    """Check a peer's proof in constant time."""
    return isinstance(mac, bytes) and hmac.compare_digest(
        proof(secret, role, transcript), mac
    )


def check_secret(secret: bytes | str | None) -> bytes | None:
    """A secret as bytes; an empty one is refused."""
    if secret is None:
        return None
    if isinstance(secret, str):
        secret = secret.encode()
    if not isinstance(secret, bytes):
        raise TypeError(f"secret must be bytes, str or None, got {type(secret)}")
    if not secret:
        raise ValueError("secret must not be empty (None for no secret)")
    return secret


def encode(msg: Sequence[Any]) -> bytes:
    """One frame: length header and msgpack body."""
    body: bytes = msgpack.packb(msg, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Reads frames from a byte stream, enforcing the size limit."""

    __slots__ = ("_buf", "_stream", "chunk", "max_frame")

    def __init__(self, stream: anyio.abc.ByteReceiveStream, max_frame: int) -> None:
        self._stream = stream
        self._buf = bytearray()
        self.max_frame = max_frame
        self.chunk = 65536
        """The most bytes read at once (small before auth)."""

    def _next(self) -> list[Any] | None:
        buf = self._buf
        if len(buf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buf)
        if size > self.max_frame:
            raise ProtocolError(
                f"frame of {size} bytes is over the limit of {self.max_frame}"
            )
        end = _HEADER.size + size
        if len(buf) < end:
            return None
        body = bytes(buf[_HEADER.size : end])
        del buf[:end]
        return decode(body)

    async def _fill(self) -> None:
        try:
            self._buf += await self._stream.receive(self.chunk)
        except anyio.EndOfStream:
            if self._buf:
                raise anyio.IncompleteRead from None
            raise

    async def read(
        self, idle_timeout: float | None, frame_timeout: float | None
    ) -> list[Any]:
        """The next message. `idle_timeout` bounds the wait for a frame to
        start, `frame_timeout` the time its bytes take once it started.

        Raises `ProtocolError` for an oversized or undecodable frame,
        `TimeoutError` when a timeout passes, `anyio.EndOfStream` /
        `anyio.IncompleteRead` when the peer closed.
        """
        msg = self._next()
        if msg is not None:
            return msg
        if not self._buf:
            if idle_timeout is None:
                await self._fill()
            else:
                with anyio.fail_after(idle_timeout):
                    await self._fill()
            msg = self._next()
            if msg is not None:
                return msg
        with anyio.fail_after(frame_timeout):
            while True:
                await self._fill()
                msg = self._next()
                if msg is not None:
                    return msg


def decode(body: bytes) -> list[Any]:
    """A message from a frame's body; `ProtocolError` if it is not one."""
    try:
        msg = msgpack.unpackb(body, raw=False, use_list=True)
    except Exception as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from None
    if not isinstance(msg, list) or not msg or type(msg[0]) is not int:
        raise ProtocolError("a frame must be an array starting with its kind")
    return msg


def expect(msg: list[Any], kind: int, types: Sequence[type | tuple[type, ...]]) -> None:
    """Check a message's kind and the types of its items."""
    if msg[0] != kind:
        raise ProtocolError(f"expected message kind {kind}, got {msg[0]}")
    if len(msg) != len(types) + 1:
        raise ProtocolError(
            f"message kind {kind} has {len(types) + 1} items, got {len(msg)}"
        )
    for i, (item, typ) in enumerate(zip(msg[1:], types, strict=True), 1):
        if not isinstance(item, typ) or (isinstance(item, bool) and typ is int):
            raise ProtocolError(
                f"message kind {kind}: item {i} has the wrong type "
                f"{type(item).__name__}"
            )


def check_time(time: object, n: int) -> list[int]:
    """A full time of `n` non-negative ticks, or `ProtocolError`."""
    if not isinstance(time, list) or len(time) != n:
        raise ProtocolError(f"a time must list {n} ticks")
    for t in time:
        if type(t) is not int or t < 0:
            raise ProtocolError(f"bad tick {t!r}")
    return time


def check_pairs(flat: object, n: int) -> list[tuple[int, int]]:
    """Flat `[index, tick, ...]` pairs of an update, or `ProtocolError`."""
    if not isinstance(flat, list) or len(flat) % 2:
        raise ProtocolError("an update must list index, tick pairs")
    pairs = list(zip(flat[::2], flat[1::2], strict=True))
    for i, t in pairs:
        if type(i) is not int or not 0 <= i < n or type(t) is not int or t < 0:
            raise ProtocolError(f"bad update pair {i!r}, {t!r}")
    return pairs
