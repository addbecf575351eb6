"""An aRPC client written from docs/rpc.md ("Wire format", "Handshake")
alone: it imports nothing of asyncmachine, only msgpack and the standard
library. Tests use it as a third-party client and as a scripted peer that
can break the protocol on purpose."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc
import msgpack

VERSION = 3
PRE_AUTH_MAX = 1024
HELLO_S, HELLO_C, WELCOME, ERROR, MUTATE, RESULT = 0, 1, 2, 3, 4, 5
AUTH, REFUSED = 12, 13


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def lp(data: bytes) -> bytes:
    return u32(len(data)) + data


def schema_hash(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def transcript(
    client_nonce: bytes,
    server_nonce: bytes,
    label: str,
    hash_: str,
    max_frame: int,
    version: int = VERSION,
) -> bytes:
    return (
        lp(b"asyncmachine-rpc")
        + u32(version)
        + lp(client_nonce)
        + lp(server_nonce)
        + lp(label.encode())
        + lp(hash_.encode("ascii"))
        + struct.pack(">Q", max_frame)
    )


def prove(secret: bytes, role: bytes, data: bytes) -> bytes:
    return hmac.new(secret, role + b"\x00" + data, hashlib.sha256).digest()


def frame(*items: Any) -> bytes:
    body = msgpack.packb(list(items), use_bin_type=True)
    return u32(len(body)) + body


class DocClient:
    """One connection speaking protocol 3, message by message."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buf = b""
        self.limit = PRE_AUTH_MAX
        self.session_id = ""
        self.source_id = ""
        self.time: list[int] = []

    async def read(self) -> list[Any]:
        while True:
            if len(self.buf) >= 4:
                (size,) = struct.unpack(">I", self.buf[:4])
                if size > self.limit:
                    raise ValueError(f"frame of {size} bytes over {self.limit}")
                if len(self.buf) >= 4 + size:
                    body, self.buf = self.buf[4 : 4 + size], self.buf[4 + size :]
                    msg: list[Any] = msgpack.unpackb(body, raw=False)
                    return msg
            self.buf += await self.stream.receive()

    async def send(self, *items: Any) -> None:
        await self.stream.send(frame(*items))

    async def hello(
        self,
        names: Sequence[str],
        label: str = "doc",
        max_frame: int = 1 << 20,
        nonce: bytes | None = None,
    ) -> tuple[bytes, str, int]:
        """Step 1; returns what the transcript needs."""
        nonce = os.urandom(32) if nonce is None else nonce
        hash_ = schema_hash(names)
        await self.send(HELLO_C, VERSION, nonce, label, hash_, max_frame)
        return nonce, hash_, max_frame

    async def handshake(
        self,
        names: Sequence[str],
        secret: bytes | None = None,
        label: str = "doc",
        max_frame: int = 1 << 20,
    ) -> list[Any]:
        """The whole handshake; the welcome (or an error message)."""
        nonce, hash_, max_frame = await self.hello(names, label, max_frame)
        msg = await self.read()
        if msg[0] == ERROR:
            return msg
        assert msg[0] == HELLO_S and msg[1] == VERSION and len(msg[2]) == 32
        data = transcript(nonce, msg[2], label, hash_, max_frame)
        proof = None
        if secret is not None:
            if msg[3] is None or not hmac.compare_digest(
                prove(secret, b"server", data), msg[3]
            ):
                raise PermissionError("the server did not prove the secret")
            proof = prove(secret, b"client", data)
        elif msg[3] is not None:
            raise PermissionError("the server wants a secret")
        await self.send(AUTH, proof)
        self.limit = max_frame
        msg = await self.read()
        if msg[0] == WELCOME:
            self.session_id, self.source_id = msg[1], msg[2]
            self.time = msg[4]
        return msg
