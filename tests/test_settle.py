"""Waiting for a target to drain the backlog an overload left behind (real calibrated target)."""

import select
import socket
import time

from redline.load.request import RequestTemplate, Target
from redline.load.settle import one_request_ms, settle


def test_settle_waits_for_the_backlog_to_drain(calibrated):
    lab = calibrated(servers=1, service_ms=10)  # 100 requests/s
    target = Target.from_url(lab.url + "/")
    payload = RequestTemplate().render(target)[0]
    assert one_request_ms(target, payload, 2.0) < 50
    # 200 requests at once: two seconds of work queued inside the target.
    socks = [socket.create_connection((target.host, target.port)) for _ in range(200)]
    try:
        for s in socks:
            s.sendall(payload)
        time.sleep(0.1)
        result = settle(target, payload, baseline_ms=10.0, max_wait_s=10)
        # The queue is FCFS: a probe answered under the threshold was served after the whole
        # backlog, so every one of the 200 responses has been written already (the server's
        # own account of the queue, read from the sockets without waiting).
        readable, _, _ = select.select(socks, [], [], 0)
        answered = sum(1 for s in readable if s.recv(65536).startswith(b"HTTP/1.1 200"))
    finally:
        for s in socks:
            s.close()
    assert result.settled and result.last_ms <= result.threshold_ms
    assert answered == 200, f"settle returned with {200 - answered} of the backlog still queued"
    assert result.requests >= 2  # the first probe queued behind the backlog and was too slow


def test_settle_gives_up_after_the_bound(calibrated):
    lab = calibrated(servers=1, service_ms=10)
    target = Target.from_url(lab.url + "/")
    payload = RequestTemplate().render(target)[0]
    result = settle(target, payload, baseline_ms=0.001, max_wait_s=1.0)  # an unreachable threshold
    # It gave up once the bound had passed (never before), with every answer over the threshold.
    assert not result.settled and result.waited_s >= 1.0
    assert result.requests >= 1 and result.last_ms > result.threshold_ms
