"""A TCP proxy in front of one Kafka listener that garbles a fraction of the responses, the way a
hostile or broken broker (or network) would: flipped bits, counts and lengths set to huge values
(plain ``i32`` and compact varints), truncated bodies, a frame that announces far more bytes
than it sends, random garbage. Requests pass unchanged; a response is mutated as a whole frame
(its length prefix recomputed, except for the lying length), so the client's decoders see the
damage. ``fraction`` can be changed while it runs: 0 makes it a plain pass-through; ``spare``
(API keys) lets the responses of those APIs through untouched, so that a client gets past its
handshake and the damage reaches the responses behind it.

    proxy = MutatingProxy(("127.0.0.1", 9093), fraction=0.3, seed=7).start()
    ...                          # clients bootstrap from proxy.bootstrap
    proxy.spare = {18, 3}        # ApiVersions and Metadata answered as the broker answers them
    proxy.fraction = 0           # clean from the next response on
    proxy.stats                  # Counter: responses, mutated, one count per mutation kind and
                                 # per API ("api 19": CreateTopics responses mutated)
    proxy.stop()

Point clients at it through the broker's advertised address (a listener whose advertised port is
the proxy's), or every connection after the bootstrap goes to the broker directly. Runs an
asyncio loop in a daemon thread of the test process.
"""
from __future__ import annotations

import asyncio
import random
import struct
import threading
from collections import Counter

from .util import free_port

MUTATIONS = ("flip", "huge_i32", "huge_varint", "truncate", "lying_length", "garbage")

# Body bytes before which nothing is mutated: the correlation id, so that the damage reaches the
# decoder of the response instead of only the client's pending-request lookup.
KEEP = 4


class MutatingProxy:
    def __init__(self, upstream, *, port=None, fraction=0.3, seed=1, mutations=MUTATIONS, spare=()):
        self.upstream = upstream
        self.port = port or free_port()
        self.fraction = fraction
        self.spare = set(spare)
        self.mutations = tuple(mutations)
        self.rng = random.Random(seed)
        self.stats = Counter()
        self._loop = None
        self._thread = None
        self._server = None
        self._ready = threading.Event()
        self._error = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, name=f"mutating-proxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError(f"mutating proxy on {self.bootstrap} did not start")
        if self._error is not None:
            raise AssertionError(f"mutating proxy on {self.bootstrap}: {self._error}")
        return self

    def stop(self):
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def _run(self):
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", self.port))
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # --- forwarding -----------------------------------------------------------------------------

    async def _client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.stats["connections"] += 1
        apis = {}  # correlation id -> api key of the requests in flight on this connection
        upstream = asyncio.ensure_future(self._requests(reader, up_writer, apis))
        try:
            await self._responses(up_reader, writer, apis)
        finally:
            upstream.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _requests(self, reader, up_writer, apis):
        try:
            while True:
                head = await reader.readexactly(4)
                (size,) = struct.unpack(">i", head)
                body = await reader.readexactly(size)
                if size >= 8:
                    api_key, _version, correlation = struct.unpack_from(">hhi", body)
                    apis[correlation] = api_key
                up_writer.write(head + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass
        finally:
            up_writer.close()

    async def _responses(self, up_reader, writer, apis):
        try:
            while True:
                head = await up_reader.readexactly(4)
                (size,) = struct.unpack(">i", head)
                body = await up_reader.readexactly(size)
                self.stats["responses"] += 1
                api = apis.pop(struct.unpack_from(">i", body)[0], None) if size >= 4 else None
                if api not in self.spare and self.fraction > 0 and self.rng.random() < self.fraction:
                    kind = self.rng.choice(self.mutations)
                    self.stats["mutated"] += 1
                    self.stats[kind] += 1
                    self.stats[f"api {api}"] += 1
                    if kind == "lying_length":
                        # Announces far more than follows, then closes the connection.
                        writer.write(struct.pack(">i", min(0x1FFFFFFF, size * 1000 + (1 << 20))) + body)
                        await writer.drain()
                        return
                    body = self._mutate(kind, body)
                writer.write(struct.pack(">i", len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass

    def _mutate(self, kind, body):
        rng = self.rng
        b = bytearray(body)
        tail = len(b) - KEEP
        if tail <= 0:
            return bytes(b[:KEEP])
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(KEEP, len(b))] ^= 1 << rng.randrange(8)
        elif kind == "huge_i32":
            at = rng.randrange(KEEP, max(KEEP + 1, len(b) - 3))
            b[at:at + 4] = struct.pack(">i", rng.choice((0x7FFFFFFF, 0x7FFFFFF0, 0x10000000, -2)))
        elif kind == "huge_varint":
            at = rng.randrange(KEEP, len(b))
            b[at:at + 5] = bytes((0xFF, 0xFF, 0xFF, 0xFF, 0x07))
        elif kind == "truncate":
            del b[rng.randrange(KEEP, len(b)):]
        elif kind == "garbage":
            b[KEEP:] = rng.randbytes(rng.randrange(0, 2 * tail + 16))
        return bytes(b)


def proxied_listener_props(port, inner_port, proxy_port):
    """Server properties of a Strata broker with two client listeners: PLAINTEXT on ``port`` for
    the test's own tools, and PROXIED on ``inner_port`` advertised at ``proxy_port``, so that a
    client bootstrapping from a proxy on ``proxy_port`` (forwarding to ``inner_port``) keeps
    going through it."""
    return {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},PROXIED://127.0.0.1:{inner_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},PROXIED://127.0.0.1:{proxy_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
    }


def peak_rss_kib(pid):
    """VmHWM (peak resident memory) of process ``pid`` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")
