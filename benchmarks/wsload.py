"""A lean WebSocket client for load generators: frames built once, written in bulk.

The benchmarks' load generator plays a OneBot v11 implementation (in production a separate
program, usually on its own cores). Driven through aiohttp's client, each ``send_str`` costs the
generator tens of microseconds of Python (framing, masking, a transport write), and on a 2-core
machine that CPU is taken from the bot being measured. Here every event's frame is built before
the clock starts: a client frame must be masked (RFC 6455 §5.3), and with the all-zero masking
key the masked payload is the payload itself, so a frame is a header plus the UTF-8 text. Frames
are then written many at a time. The bot still receives, unmasks and parses every frame on its
own. Incoming pings are answered (the bot's server closes a connection that does not answer its
heartbeat pings); incoming text frames go to ``on_text`` if one is given (a OneBot peer answers
the bot's actions there), else they are discarded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import Callable, Mapping, Sequence

_ZERO_MASK = b"\x00\x00\x00\x00"
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA


def client_frame(payload: bytes, opcode: int = _OP_TEXT) -> bytes:
    """One final, masked (zero key) client frame carrying ``payload``."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + _ZERO_MASK + payload


class LoadSocket:
    """A client WebSocket connection for pushing pre-built frames."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_text: Callable[[LoadSocket, bytes], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_text = on_text
        self.closed = False
        self._pump = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        headers: Mapping[str, str],
        on_text: Callable[[LoadSocket, bytes], None] | None = None,
    ) -> LoadSocket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = await reader.readline()
        if b" 101 " not in status:
            writer.close()
            raise ConnectionError(f"WebSocket upgrade refused: {status.decode(errors='replace')}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(reader, writer, on_text)

    async def send_frames(self, frames: Sequence[bytes]) -> None:
        """Write pre-built frames in one go and wait until the socket has taken them."""
        self._writer.write(b"".join(frames))
        await self._writer.drain()

    def send_text(self, text: str) -> None:
        """Queue one text frame (written with the next drain; no wait)."""
        self._writer.write(client_frame(text.encode()))

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(ConnectionError):
                self._writer.write(client_frame(struct.pack("!H", 1000), _OP_CLOSE))
                await self._writer.drain()
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def _read(self) -> None:
        try:
            while True:
                b0, b1 = await self._reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self._reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
                payload = await self._reader.readexactly(n)  # server frames are not masked
                opcode = b0 & 0x0F
                if opcode == _OP_PING:
                    self._writer.write(client_frame(payload, _OP_PONG))
                elif opcode == _OP_TEXT and self._on_text is not None:
                    self._on_text(self, payload)
                elif opcode == _OP_CLOSE:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.closed = True
