"""Multi-step iterations against the reference identity service: issue a token, then validate it.

A counting TCP relay on 127.0.0.1 sits between redline and the service, so that the test
knows what reached the server (requests per method) and which tokens it handed out.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

import httptools
import numpy as np
import pytest

from conftest import GEN_CPUS, TARGET_CPUS
from identity_helpers import password_body
from redline.jobs.run import run_fixed_rate
from redline.lab import identity as lab
from redline.load.engine import LoadPlan
from redline.load.request import RequestTemplate, Target
from redline.load.schedule import Schedule
from redline.model.samples import RequestOutcome

PASSWORD = "correct horse battery"
TOKEN_RE = re.compile(rb"x-subject-token: *([^\r\n]+)", re.IGNORECASE)


class CountingRelay:
    """Forwards every connection to `upstream`; counts the requests it carries by method and
    keeps the tokens the server answered with."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.methods: dict[str, int] = {}
        self.tokens: set[bytes] = set()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(5)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        relay = self

        class Requests:
            def on_message_complete(self) -> None:
                method = parser.get_method().decode()
                relay.methods[method] = relay.methods.get(method, 0) + 1

        parser = httptools.HttpRequestParser(Requests())

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, requests: bool) -> None:
            try:
                while data := await src.read(65536):
                    if requests:
                        parser.feed_data(data)
                    else:
                        self.tokens.update(TOKEN_RE.findall(data))
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, httptools.HttpParserError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    d = tmp_path_factory.mktemp("identity")
    state = lab.up(lab.IdentityLabConfig(d, workers=1, bench_users=1, cpus=TARGET_CPUS), PASSWORD)
    yield state
    lab.down(d)


@pytest.fixture
def relay(service):
    port = int(service.url.split(":")[2].split("/")[0])
    r = CountingRelay(port)
    yield r
    r.close()


def _issue_then_validate(password: str) -> RequestTemplate:
    json_type = (("Content-Type", "application/json"),)
    return RequestTemplate(
        name="token",
        pool=({"password": password},),
        steps=(
            RequestTemplate(
                name="issue",
                method="POST",
                path="/v3/auth/tokens",
                headers=json_type,
                body=json.dumps(password_body("admin", "${password}", "admin")).encode(),
                capture=(("X-Subject-Token", "token"),),
            ),
            RequestTemplate(
                name="validate",
                method="GET",
                path="/v3/auth/tokens",
                headers=(("X-Auth-Token", "${token}"), ("X-Subject-Token", "${token}")),
            ),
        ),
    )


def _run(relay: CountingRelay, request: RequestTemplate, tmp_path, count: int = 20):
    plan = LoadPlan(
        target=Target.from_url(relay.url),
        request=request,
        schedule=Schedule(rate=count, duration_s=1.0),
        workers=1,
        cpus=GEN_CPUS,
        connection_cap=8,
        read_timeout_s=5,
    )
    return run_fixed_rate(plan, {"url": relay.url}, tmp_path, "steps")


def test_two_step_iteration_issue_then_validate(relay, tmp_path):
    outcome = _run(relay, _issue_then_validate(PASSWORD), tmp_path)
    s = outcome.folder.read_samples()
    assert len(s) == 20
    assert np.all(s.outcome == RequestOutcome.OK), s.outcome
    assert np.all(s.status == 200)  # the status of the last step (validation)
    assert relay.methods == {"POST": 20, "GET": 20}  # 2 requests per iteration reached the server
    assert len(relay.tokens) == 20

    summary = outcome.summary
    assert [(st.name, st.count, st.errors) for st in summary.steps] == [
        ("token: issue", 20, 0),
        ("token: validate", 20, 0),
    ]
    # Step latencies add up to the iteration's latency, row by row.
    assert s.step_done_ns is not None
    issue = s.step_done_ns[:, 0] - s.intended_ns
    validate = s.step_done_ns[:, 1] - s.step_done_ns[:, 0]
    assert np.all(issue > 0) and np.all(validate > 0)
    assert np.array_equal(issue + validate, s.latency_ns)
    assert all(st.p50 <= summary.latency_ms["p50"] * 1.0001 for st in summary.steps)

    doc = json.loads((outcome.folder.path / "run.json").read_text())
    assert [st["name"] for st in doc["summary"]["steps"]] == ["token: issue", "token: validate"]
    # the per-step columns are in the samples parts: the step figures are recomputed from the folder
    from redline.analysis.run_summary import summarize

    back = outcome.folder.read_samples()
    assert back.step_done_ns is not None and np.array_equal(back.step_done_ns, s.step_done_ns)
    assert back.step_names == s.step_names and back.step_prev == s.step_prev
    again = summarize(back, summary.window_s, summary.offered_rps, back.measure_from_ns)
    assert again.steps == summary.steps
    stored = b"".join(p.read_bytes() for p in outcome.folder.path.rglob("*") if p.is_file())
    for token in relay.tokens:
        assert token not in stored
    assert PASSWORD.encode() not in stored

    from redline.report import write_reports

    pages = write_reports(outcome.folder.path)
    html = next(p for p in pages if p.name == "report.html").read_text()
    assert 'id="steps"' in html and "token: validate" in html
    stored = b"".join(p.read_bytes() for p in outcome.folder.path.rglob("*") if p.is_file())
    assert not any(token in stored for token in relay.tokens)


def test_failing_first_step_ends_the_iteration(relay, tmp_path):
    outcome = _run(relay, _issue_then_validate("wrong password"), tmp_path, count=10)
    s = outcome.folder.read_samples()
    assert np.all(s.outcome == RequestOutcome.HTTP) and np.all(s.status == 401)
    assert relay.methods == {"POST": 10}  # step 2 was never sent
    assert s.failed_step is not None and np.all(s.failed_step == 0)
    issue, validate = outcome.summary.steps
    assert (issue.count, issue.errors, issue.p50) == (10, 10, None)
    assert (validate.count, validate.errors) == (0, 0)


def test_mix_of_an_iteration_and_single_requests(relay, tmp_path):
    single = RequestTemplate(method="GET", path="/v3", name="root")
    outcome = _run(relay, RequestTemplate.mix([(_issue_then_validate(PASSWORD), 1), (single, 1)]), tmp_path)
    s = outcome.folder.read_samples()
    assert np.all(s.outcome == RequestOutcome.OK), s.outcome
    # 10 iterations (POST + GET) and 10 single GETs
    assert relay.methods == {"POST": 10, "GET": 20}
    assert [(st.count, st.errors) for st in outcome.summary.steps] == [(10, 0), (10, 0)]


def _capture_then_use_against(answer: bytes):
    """Two steps (capture X-Subject-Token, send it back) at 10/s for 1 s against a server that
    answers `answer` and closes; (samples, connections the server accepted)."""
    from redline.load.engine import run_load
    from test_run_errors import _OneShotServer

    server = _OneShotServer(answer)
    try:
        request = RequestTemplate(
            steps=(
                RequestTemplate(path="/issue", capture=(("X-Subject-Token", "token"),)),
                RequestTemplate(path="/use", headers=(("X-Auth-Token", "${token}"),)),
            )
        )
        plan = LoadPlan(
            target=Target.from_url(f"http://127.0.0.1:{server.port}/"),
            request=request,
            schedule=Schedule(rate=10, duration_s=1.0),
            workers=1,
            cpus=GEN_CPUS,
            read_timeout_s=3,
        )
        return run_load(plan).samples, server.connections
    finally:
        server.close()


def test_steps_continue_on_a_fresh_connection_when_the_server_closes():
    answer = b"HTTP/1.0 200 OK\r\nX-Subject-Token: abc\r\n\r\nbody"  # HTTP/1.0 style: body ends at close
    s, connections = _capture_then_use_against(answer)
    assert np.all(s.outcome == RequestOutcome.OK), s.outcome
    assert connections == 20  # one per step: each answer closed its connection
    assert s.step_done_ns is not None and np.all(s.step_done_ns > 0)
    assert np.all(s.bytes_in == 2 * len(answer))


def test_missing_captured_header_ends_the_iteration_as_protocol():
    s, connections = _capture_then_use_against(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert np.all(s.outcome == RequestOutcome.PROTOCOL) and np.all(s.status == 200)
    assert connections == 10  # step 2 never sent
    assert s.failed_step is not None and np.all(s.failed_step == 0)
