"""A wake-up at an exact CLOCK_MONOTONIC instant, on any asyncio loop.

Event loops (asyncio's epoll selector, libuv under uvloop) time their sleeps in whole
milliseconds, so a request due at t is sent anywhere in [t, t + 1 ms) — enough to blur
a 10 ms service time by 5 %, and to make "sent more than 1 ms late" meaningless. A
Linux timerfd armed with an absolute deadline wakes the loop within tens of µs; the
loop only sees a readable file descriptor. Elsewhere we fall back to `call_at`.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Callable
from time import monotonic_ns

_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()


class PreciseTimer:
    """Calls `callback()` on the loop once the monotonic clock reaches the armed instant.

    Arming again replaces the previous deadline (one pending wake-up at a time).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback
        self.fd = -1
        self._handle: asyncio.TimerHandle | None = None
        if _libc is not None:
            fd = _libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self.fd = fd
                self._libc = _libc  # not None here; the methods use it only when fd >= 0
                self._spec = _Itimerspec()
                self._spec_ref = ctypes.byref(self._spec)
                loop.add_reader(fd, self._fired)

    @property
    def precise(self) -> bool:
        return self.fd >= 0

    def arm_at(self, deadline_ns: int) -> None:
        if self.fd >= 0:
            if deadline_ns <= 0:
                deadline_ns = 1  # zero would disarm the timer
            value = self._spec.it_value
            value.tv_sec, value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
            self._libc.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)
        else:
            if self._handle is not None:
                self._handle.cancel()
            delay = (deadline_ns - monotonic_ns()) / 1e9
            self._handle = self.loop.call_later(max(delay, 0.0), self.callback)

    def cancel(self) -> None:
        if self.fd >= 0:
            self._spec.it_value.tv_sec = self._spec.it_value.tv_nsec = 0
            self._libc.timerfd_settime(self.fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)
        elif self._handle is not None:
            self._handle.cancel()

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1
        elif self._handle is not None:
            self._handle.cancel()

    def _fired(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return  # re-armed after it expired: nothing due yet
        self.callback()
