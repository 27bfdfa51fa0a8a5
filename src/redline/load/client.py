"""The fast HTTP/1.1 request path: asyncio.Protocol + httptools, one request per connection at a time.

Hand-written for speed (see benchmarks/engine.py): one `Connection` object per socket,
no coroutine per request, no per-request allocation beyond what the parser does. The
`Pool` owns the connections of one worker process and writes results straight into the
recorder's columns (array.array: far cheaper to set per item than NumPy scalars).

Keep-alive rules:
- a connection is reused until the server says `Connection: close` or closes it;
- a request written on a *reused* connection that closes before any response byte
  arrives is sent once more on a fresh connection (servers such as uWSGI close idle
  keep-alive sockets without saying so; the request never reached the application);
- the pool grows up to `cap` connections; requests beyond that wait, in order, and
  their wait counts in their latency (latency is measured from the intended time).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
from collections import deque
from time import monotonic_ns
from typing import TYPE_CHECKING

import httptools

from redline.model.samples import RequestOutcome

if TYPE_CHECKING:
    from redline.load.recorder import Recorder
    from redline.load.request import Iterations, Step

_OK = int(RequestOutcome.OK)
_HTTP = int(RequestOutcome.HTTP)
_RESET = int(RequestOutcome.RESET)
_PROTOCOL = int(RequestOutcome.PROTOCOL)
_TIMEOUT = int(RequestOutcome.TIMEOUT)
_CONNECT = int(RequestOutcome.CONNECT)


class Connection(asyncio.Protocol):
    __slots__ = ("closing", "first_row", "got", "head", "parser", "pool", "row", "served", "transport")

    def __init__(self, pool: Pool, first_row: int) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.row = -1  # the row in flight, -1 when idle
        self.got = 0  # response bytes for the row in flight
        self.head = b""  # first chunk of the response in flight: read only if the socket closes mid-response
        self.served = 0  # responses completed on this connection
        self.first_row = first_row  # the row to send once connected
        self.closing = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        row, self.first_row = self.first_row, -1
        self.pool.connected(self, row)

    def data_received(self, data: bytes) -> None:
        if not self.got:
            self.head = data
        self.got += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.row >= 0:
                self.pool.failed(self, _PROTOCOL)
            self._abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.row >= 0 and self.got:
            status = eof_delimited_status(self.head)
            if status:
                # A body without Content-Length or chunked framing ends at close (RFC 9112
                # §6.3): the message is complete, not reset.
                self.served += 1
                self.pool.completed(self, status, False)
        self.pool.lost(self, exc)

    # -- httptools callbacks --

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        self.served += 1
        self.pool.completed(self, self.parser.get_status_code(), keep)

    # -- used by the pool --

    def send(self, row: int, payload: bytes, now: int) -> None:
        self.row = row
        self.got = 0
        self.pool.rec.sent[row] = now
        self.transport.write(payload)  # type: ignore[union-attr]

    def _abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """The connections of one worker and the backlog of requests waiting for one."""

    conn_cls: type[Connection] = Connection

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rec: Recorder,
        payloads: list[bytes],
        host: str,
        port: int,
        ssl_ctx: ssl.SSLContext | None,
        cap: int,
        connect_timeout: float,
    ) -> None:
        self.loop = loop
        self.rec = rec
        self.payloads = payloads
        self.n_payloads = len(payloads)
        self.host = host
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.server_hostname = host if ssl_ctx is not None else None
        self.cap = cap
        self.connect_timeout = connect_timeout
        self.idle: list[Connection] = []
        self.busy: set[Connection] = set()
        self.opening = 0
        self.backlog: deque[int] = deque()
        self.retried: set[int] = set()
        self.cap_hits = 0
        self.connects = 0
        self.connect_failures = 0
        self.last_connect_error = ""

    @property
    def open_count(self) -> int:
        return len(self.idle) + len(self.busy) + self.opening

    @property
    def saturated(self) -> bool:
        """No idle connection and no room for another: a new request can only queue."""
        return not self.idle and len(self.busy) + self.opening >= self.cap

    def dispatch(self, row: int, now: int) -> None:
        """Send `row` now if a connection is free, open one if allowed, else queue it."""
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(row, self.payloads[row % self.n_payloads], now)
        elif self.backlog or self.open_count >= self.cap:
            if self.open_count >= self.cap:
                self.cap_hits += 1
            self.backlog.append(row)
        else:
            self._open(row)

    def _open(self, row: int) -> None:
        self.opening += 1
        self.connects += 1
        self.loop.create_task(self._connect(row))

    async def _connect(self, row: int) -> None:
        try:
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: self.conn_cls(self, row),
                    self.host,
                    self.port,
                    ssl=self.ssl_ctx,
                    server_hostname=self.server_hostname,
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self.opening -= 1
            self.connect_failures += 1
            self.last_connect_error = _describe_connect_error(exc)
            self.rec.finish(row, 0, _CONNECT, 0)
            self._next_from_backlog()

    # -- called by connections --

    def connected(self, conn: Connection, row: int) -> None:
        self.opening -= 1
        if self.rec.outcome[row] != -1:  # settled while we were connecting (run abandoned)
            self.idle.append(conn)
            return
        self.busy.add(conn)
        conn.send(row, self.payloads[row % self.n_payloads], monotonic_ns())

    def completed(self, conn: Connection, status: int, keep_alive: bool) -> None:
        row = conn.row
        conn.row = -1
        self.rec.finish(row, status, _OK if status < 400 else _HTTP, conn.got)
        self._release(conn, keep_alive)

    def _release(self, conn: Connection, keep_alive: bool) -> None:
        """The connection's next request from the backlog, or back to idle."""
        if keep_alive and not conn.closing:
            if self.backlog:
                nxt = self.backlog.popleft()
                conn.send(nxt, self.payloads[nxt % self.n_payloads], monotonic_ns())
            else:
                self.busy.discard(conn)
                self.idle.append(conn)
        else:
            # The server will close it: free the slot now so that the backlog moves on.
            self.busy.discard(conn)
            conn._abort()
            self._next_from_backlog()

    def failed(self, conn: Connection, outcome: int) -> None:
        row = conn.row
        conn.row = -1
        self.busy.discard(conn)
        self.rec.finish(row, 0, outcome, conn.got)

    def lost(self, conn: Connection, exc: Exception | None) -> None:
        self.busy.discard(conn)
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        row = conn.row
        if row >= 0:
            conn.row = -1
            if conn.got == 0 and conn.served > 0 and row not in self.retried:
                # A stale keep-alive socket: the request never reached the server.
                self.retried.add(row)
                self.backlog.appendleft(row)
            else:
                self.rec.finish(row, 0, _RESET, conn.got)
        self._next_from_backlog()

    def _next_from_backlog(self) -> None:
        while self.backlog:
            if self.idle:
                conn = self.idle.pop()
                self.busy.add(conn)
                row = self.backlog.popleft()
                conn.send(row, self.payloads[row % self.n_payloads], monotonic_ns())
            elif self.open_count < self.cap:
                self._open(self.backlog.popleft())
            else:
                return

    # -- housekeeping (called a few times a second, never per request) --

    def expire(self, now: int, read_timeout_ns: int) -> int:
        """Fail requests in flight for longer than the read timeout; returns how many."""
        sent = self.rec.sent
        late = [c for c in self.busy if c.row >= 0 and now - sent[c.row] > read_timeout_ns]
        for conn in late:
            self.failed(conn, _TIMEOUT)
            conn._abort()
        if late:
            self._next_from_backlog()
        return len(late)

    def close_all(self) -> None:
        """Close every socket; rows still in flight stay open for the caller to settle."""
        for conn in list(self.idle) + list(self.busy):
            conn.row = -1
            conn._abort()
        self.idle.clear()
        self.busy.clear()


# The state of an iteration between two steps: its steps, the next one, captured values,
# response bytes so far.
_Resume = tuple["tuple[Step, ...]", int, list[bytes], int]


class StepConnection(Connection):
    """A connection that can carry multi-step iterations: captures response headers and
    sends an iteration's next step filled with them."""

    __slots__ = ("acc", "chain", "step", "values", "want")

    def __init__(self, pool: Pool, first_row: int) -> None:
        super().__init__(pool, first_row)
        self.chain: tuple[Step, ...] = ()  # the steps of the iteration in flight; () for a single request
        self.step = 0
        self.values: list[bytes] = []
        self.want: tuple[tuple[bytes, int], ...] = ()  # captures of the step in flight
        self.acc = 0  # response bytes of the iteration's earlier steps

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.want:
            lname = name.lower()
            for header, idx in self.want:
                if header == lname:
                    self.values[idx] = value

    def send(self, row: int, payload: bytes, now: int) -> None:
        pool: IterationPool = self.pool  # type: ignore[assignment]
        state = pool.resume.pop(row, None)
        if state is None:  # step 1 (or a single request): `payload` is its bytes
            self.chain = pool.chains[row % pool.n_payloads]
            self.step = 0
            self.values = [b""] * pool.n_vars
            self.acc = 0
            pool.rec.sent[row] = now  # the iteration's first byte
        else:
            self.chain, self.step, self.values, self.acc = state
            payload = self.chain[self.step].build(self.values)
        self.want = self.chain[self.step].captures if self.chain else ()
        self.row = row
        self.got = 0
        self.transport.write(payload)  # type: ignore[union-attr]


class IterationPool(Pool):
    """A pool whose rows are iterations: step k+1 follows step k's 2xx/3xx on the same
    connection (a fresh one when the server closed it); the row ends with the last step
    or the first that fails. Kept apart from `Pool` so that single requests pay nothing."""

    conn_cls = StepConnection

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rec: Recorder,
        payloads: list[bytes],
        host: str,
        port: int,
        ssl_ctx: ssl.SSLContext | None,
        cap: int,
        connect_timeout: float,
        iterations: Iterations,
    ) -> None:
        super().__init__(loop, rec, payloads, host, port, ssl_ctx, cap, connect_timeout)
        self.chains = iterations.chains
        self.n_vars = iterations.n_vars
        self.n_slots = len(iterations.names)
        self.resume: dict[int, _Resume] = {}  # rows between two steps, waiting for a connection

    def completed(self, conn: Connection, status: int, keep_alive: bool) -> None:
        c: StepConnection = conn  # type: ignore[assignment]
        if not c.chain:
            super().completed(conn, status, keep_alive)
            return
        row = c.row
        step = c.chain[c.step]
        rec = self.rec
        cell = row * self.n_slots + step.slot
        if status >= 400:
            rec.failed_step[row] = step.slot
        elif c.step + 1 < len(c.chain):
            if any(not c.values[idx] for _, idx in step.captures):
                # The header to capture is missing: the next step cannot be built.
                rec.failed_step[row] = step.slot
                c.row = -1
                rec.finish(row, status, _PROTOCOL, c.got + c.acc)
                self._release(c, keep_alive)
                return
            rec.step_done[cell] = monotonic_ns()
            self.resume[row] = (c.chain, c.step + 1, c.values, c.acc + c.got)
            if keep_alive and not c.closing:
                c.send(row, b"", rec.step_done[cell])
            else:
                c.row = -1
                self.busy.discard(c)
                c._abort()
                self.backlog.appendleft(row)
                self._next_from_backlog()
            return
        c.got += c.acc
        super().completed(conn, status, keep_alive)
        if status < 400:  # the last step: it ends when the iteration does
            rec.step_done[cell] = rec.done[row]

    def failed(self, conn: Connection, outcome: int) -> None:
        c: StepConnection = conn  # type: ignore[assignment]
        if c.chain and c.row >= 0:
            self.rec.failed_step[c.row] = c.chain[c.step].slot
            c.got += c.acc
        super().failed(conn, outcome)

    def lost(self, conn: Connection, exc: Exception | None) -> None:
        c: StepConnection = conn  # type: ignore[assignment]
        row = c.row
        if row < 0 or not c.chain:
            super().lost(conn, exc)
            return
        if c.step:  # kept for a resend when the socket was a stale keep-alive one
            self.resume[row] = (c.chain, c.step, c.values, c.acc)
        super().lost(conn, exc)
        if self.rec.outcome[row] != -1:  # not resent: the iteration ends here
            self.resume.pop(row, None)
            self.rec.failed_step[row] = c.chain[c.step].slot
            self.rec.bytes_in[row] += c.acc

    async def _connect(self, row: int) -> None:
        await super()._connect(row)
        if self.rec.outcome[row] == _CONNECT:
            state = self.resume.pop(row, None)
            chain = state[0] if state else self.chains[row % self.n_payloads]
            if chain:
                self.rec.failed_step[row] = chain[state[1] if state else 0].slot


class _HeadProbe:
    """Collects the framing headers of one response head (httptools callbacks)."""

    __slots__ = ("complete", "framed")

    def __init__(self) -> None:
        self.framed = False
        self.complete = False

    def on_header(self, name: bytes, _value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.complete = True


def eof_delimited_status(head: bytes) -> int:
    """The status of a response whose body is delimited by the connection's close, else 0.

    Read only when a connection closes with a response in flight (never per request):
    `head` is the response's first chunk; a head longer than that chunk, a framed body
    (Content-Length, chunked) or a status without a body means the close cut it: 0."""
    probe = _HeadProbe()
    parser = httptools.HttpResponseParser(probe)
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:
        return 0
    if not probe.complete or probe.framed:
        return 0
    status = parser.get_status_code()
    if status < 200 or status in (204, 304):
        return 0
    return int(status)


def _describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "connect timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
    return str(exc) or type(exc).__name__
