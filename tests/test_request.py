"""Request rendering: placeholders from a pool and mixes of several kinds of request."""

from __future__ import annotations

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
