"""Waiting for a target to drain the backlog an overload left behind (real calibrated target)."""

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
        began = time.monotonic()
        result = settle(target, payload, baseline_ms=10.0, max_wait_s=10)
        waited = time.monotonic() - began
    finally:
        for s in socks:
            s.close()
    assert result.settled and result.last_ms <= result.threshold_ms
    assert 1.2 < waited < 4.0  # it waited for the queue, and not much longer
    assert result.requests >= 2


def test_settle_gives_up_after_the_bound(calibrated):
    lab = calibrated(servers=1, service_ms=10)
    target = Target.from_url(lab.url + "/")
    payload = RequestTemplate().render(target)[0]
    result = settle(target, payload, baseline_ms=0.001, max_wait_s=1.0)  # an unreachable threshold
    assert not result.settled and 1.0 <= result.waited_s < 2.5
