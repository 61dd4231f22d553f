"""A loopback TCP proxy a test can stop and start: a database outage while the shared
server keeps running for everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class TcpProxy:
    """A loopback TCP proxy to ``target``, on a port of its own that stays the same across
    ``stop`` (every connection cut, new ones refused: an outage) and ``start``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        # Black-holed: connections are accepted and what they send is swallowed, with no
        # answer and no reset (a server behind a firewall that drops packets).
        self._silent = False

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> None:
        self._silent = False

        async def listen() -> None:
            self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port, reuse_address=True)
            self.port = self._server.sockets[0].getsockname()[1]

        self._call(listen())

    def stop(self) -> None:
        async def cut() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for writer in list(self._writers):
                writer.transport.abort()

        self._call(cut())

    def blackhole(self) -> None:
        """From now on nothing goes through and nothing is refused: every connection, old
        or new, stays open and silent."""
        self._silent = True

    def close(self) -> None:
        self.stop()

        async def end_pipes() -> None:
            # Pipes still copying would be destroyed pending with the loop (a logged error).
            pipes = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)

        self._call(end_pipes())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._silent:
            self._writers.add(client_w)
            with contextlib.suppress(OSError):
                while await client_r.read(65536):
                    pass
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, server_w}

        async def copy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    if self._silent:
                        continue
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        await asyncio.gather(copy(client_r, server_w), copy(server_r, client_w))
        self._writers -= {client_w, server_w}


__all__ = ["TcpProxy"]
