"""Request rendering: placeholders from a pool and mixes of several kinds of request."""

from __future__ import annotations

import pytest

from redline.errors import UserError
from redline.load.request import RequestTemplate, Target

T = Target.from_url("http://127.0.0.1:5000/")


def test_pool_renders_one_variant_per_entry():
    t = RequestTemplate("GET", "/v3/auth/tokens", (("X-Subject-Token", "${tok}"),), pool=({"tok": "a"}, {"tok": "b"}))
    out = t.render(T)
    assert len(out) == 2 and b"X-Subject-Token: a\r\n" in out[0] and b"X-Subject-Token: b\r\n" in out[1]
    assert t.describe()["headers"] == [["X-Subject-Token", "<redacted>"]]


def test_mix_interleaves_in_proportion_and_uses_every_variant():
    issue = RequestTemplate("POST", "/v3/auth/tokens", body=b"${b}", pool=tuple({"b": f"u{i}"} for i in range(3)))
    validate = RequestTemplate(
        "GET", "/v3/auth/tokens", (("X-Subject-Token", "${t}"),), pool=tuple({"t": f"t{i}"} for i in range(10))
    )
    out = RequestTemplate.mix([(issue, 1), (validate, 4)]).render(T)
    methods = [r.split(b" ", 1)[0] for r in out]
    assert len(out) == 15  # 3 rounds of 1 + 4 (ceil(10 / 4) = 3 rounds)
    assert methods[:5] == [b"POST", b"GET", b"GET", b"GET", b"GET"]
    assert methods.count(b"POST") * 4 == methods.count(b"GET")
    assert {r.rsplit(b"\r\n\r\n", 1)[1] for r in out if r.startswith(b"POST")} == {b"u0", b"u1", b"u2"}
    assert all(any(f"X-Subject-Token: t{i}\r\n".encode() in r for r in out) for i in range(10))
    assert b"Content-Length: 2\r\n" in out[0]


def test_mix_describes_its_parts_without_secrets():
    v = RequestTemplate("GET", "/", (("X-Auth-Token", "secret"),))
    d = RequestTemplate.mix([(v, 2), (RequestTemplate("POST", "/", body=b"pw"), 1)]).describe()
    assert [p["weight"] for p in d["mix"]] == [2, 1]
    assert "secret" not in repr(d) and "pw" not in repr(d)


def _two_steps(**second) -> RequestTemplate:
    return RequestTemplate(
        name="t",
        pool=({"pw": "p1"}, {"pw": "p2"}),
        steps=(
            RequestTemplate(
                method="POST", path="/tokens", body=b'{"pw": "${pw}"}', capture=(("X-Subject-Token", "tok"),)
            ),
            RequestTemplate(**{"method": "GET", "path": "/check", "headers": (("X-Auth-Token", "${tok}"),)} | second),
        ),
    )


def test_iteration_compiles_first_steps_to_bytes_and_fills_captures_at_send_time():
    payloads, its = _two_steps().compile(T)
    assert [p.split(b"\r\n\r\n")[1] for p in payloads] == [b'{"pw": "p1"}', b'{"pw": "p2"}']
    assert its is not None and its.names == ("t: POST /tokens", "t: GET /check") and its.prev == (-1, 0)
    first, second = its.chains[0]
    assert first.captures == ((b"x-subject-token", 0),)
    assert second.build([b"SECRET"]).startswith(b"GET /check HTTP/1.1\r\n")
    assert b"\r\nX-Auth-Token: SECRET\r\n\r\n" in second.build([b"SECRET"])
    # secrets stay out of the description
    assert "SECRET" not in str(_two_steps().describe()) and "p1" not in str(_two_steps().describe())


def test_captured_value_in_a_body_gets_its_length_at_send_time():
    _, its = _two_steps(method="POST", body=b'{"token": "${tok}"}').compile(T)
    assert its is not None
    wire = its.chains[1][1].build([b"abc"])
    head, body = wire.split(b"\r\n\r\n")
    assert body == b'{"token": "abc"}' and f"Content-Length: {len(body)}".encode() in head


def test_a_step_using_a_value_nobody_captured_is_a_user_error():
    with pytest.raises(UserError, match="placeholder has no value"):
        _two_steps(headers=(("X-Auth-Token", "${nobody}"),)).compile(T)


def test_single_requests_compile_to_the_bytes_they_always_rendered():
    t = RequestTemplate(method="POST", path="/x/${u}", body=b"${u}", pool=({"u": "1"},))
    assert t.compile(T) == (t.render(T), None)
    assert t.render(T)[0].endswith(b"Content-Length: 1\r\n\r\n1")
