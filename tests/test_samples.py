import numpy as np

from redline.model.samples import NOT_SET, RequestOutcome, Samples
from redline.redact import redacted_command_line
from redline.store.npz import read_samples, write_samples


def make(n=5):
    intended = np.arange(n, dtype=np.int64) * 1_000_000 + 10_000_000
    sent = intended + 100
    done = sent + 5_000_000
    outcome = np.array([0, 0, 1, 6, 2][:n], dtype=np.int8)
    done[3] = NOT_SET
    sent[3] = NOT_SET
    return Samples(
        intended_ns=intended,
        sent_ns=sent,
        done_ns=done,
        status=np.array([200, 200, 503, 0, 0][:n], dtype=np.int16),
        outcome=outcome,
        bytes_in=np.full(n, 10, dtype=np.int32),
        worker=np.zeros(n, dtype=np.int16),
        start_ns=10_000_000,
        measure_from_ns=11_000_000,
        anchor_mono_ns=1,
        anchor_wall_ns=2,
    )


def test_masks_and_derived_columns():
    s = make()
    assert s.completed.tolist() == [True, True, True, False, False]
    assert s.errors.tolist() == [False, False, True, False, True]
    assert s.unsent.tolist() == [False, False, False, True, False]
    assert s.latency_ns[0] == 5_000_100 and s.service_ns[0] == 5_000_000 and s.lag_ns[0] == 100
    assert len(s.measured()) == 4
    assert RequestOutcome.UNSENT_BACKLOG.is_unsent and RequestOutcome.HTTP.is_error and not RequestOutcome.OK.is_error


def test_save_load_roundtrip(tmp_path):
    s = make()
    write_samples(tmp_path / "s.npz", s)
    t = read_samples(tmp_path / "s.npz")
    for name in ("intended_ns", "sent_ns", "done_ns", "status", "outcome", "bytes_in", "worker"):
        assert np.array_equal(getattr(s, name), getattr(t, name))
        assert getattr(s, name).dtype == getattr(t, name).dtype
    assert (t.start_ns, t.measure_from_ns, t.anchor_mono_ns, t.anchor_wall_ns) == (10_000_000, 11_000_000, 1, 2)


def test_concat_sorts_by_intended_time():
    a, b = make(), make()
    b = b.select(np.arange(5))
    merged = Samples.concat([b, a])
    assert len(merged) == 10 and np.all(np.diff(merged.intended_ns) >= 0)


def test_command_line_redaction():
    line = redacted_command_line(
        [
            "redline",
            "run",
            "--url",
            "http://x/",
            "-H",
            "X-Auth-Token: abc123",
            "--os-password",
            "s3cret",
            '--body={"pw": 1}',
            "--token=t0k",
        ]
    )
    assert "abc123" not in line and "s3cret" not in line and "t0k" not in line and "pw" not in line
    assert "http://x/" in line


def test_a_run_stopped_in_warm_up_is_summarised_over_its_warm_up():
    from redline.analysis.run_summary import summarize, warmup_summary

    s = make()
    s = Samples(**{**s.__dict__, "measure_from_ns": 20_000_000})  # every row is in the warm-up
    assert summarize(s, 0.0, 100.0).achieved_rps == 0.0
    w = warmup_summary(s, stopped_at_ns=19_000_000, offered_rate=100.0)
    # 9 ms from the start: all 5 rows scheduled, the two 200s (done at ~15 and ~16 ms) count
    assert w is not None and w.window_s == 0.009 and w.scheduled == 5
    assert w.achieved_rps == round(2 / 0.009, 3) and w.latency_ms["p50"] > 0
    assert warmup_summary(s, stopped_at_ns=25_000_000, offered_rate=100.0) is None  # stopped after warm-up
    assert warmup_summary(s, stopped_at_ns=0, offered_rate=100.0) is None  # not stopped


def test_samples_are_stored_compressed_and_read_back_exactly(tmp_path):
    # 200k requests at 20k/s over 8 workers: lag tens of µs, answers ~0.2–2 ms, a few errors
    rng = np.random.default_rng(3)
    n = 200_000
    intended = 5_000_000_000 + np.arange(n, dtype=np.int64) * 50_000
    sent = intended + rng.integers(5_000, 80_000, n)
    done = sent + rng.lognormal(np.log(400_000), 0.5, n).astype(np.int64)
    outcome = np.zeros(n, np.int8)
    outcome[rng.choice(n, 200, replace=False)] = RequestOutcome.CONNECT
    sent[outcome == RequestOutcome.CONNECT] = NOT_SET
    s = Samples(
        intended_ns=intended, sent_ns=sent, done_ns=done,
        status=np.where(outcome == 0, 200, 0).astype(np.int16), outcome=outcome,
        bytes_in=np.full(n, 612, np.int32), worker=(np.arange(n) % 8).astype(np.int16),
        start_ns=5_000_000_000, measure_from_ns=6_000_000_000, anchor_mono_ns=1, anchor_wall_ns=2,
    )  # fmt: skip
    path = write_samples(tmp_path / "samples.npz", s)
    per_request = path.stat().st_size / n
    assert per_request <= 12, per_request  # 33 bytes per request uncompressed
    back = read_samples(path)
    for name in ("intended_ns", "sent_ns", "done_ns", "status", "outcome", "bytes_in", "worker"):
        assert np.array_equal(getattr(back, name), getattr(s, name)), name
        assert getattr(back, name).dtype == getattr(s, name).dtype, name


def test_samples_written_uncompressed_by_an_older_version_still_read(tmp_path):
    s = make()
    clock = np.array([s.start_ns, s.measure_from_ns, s.anchor_mono_ns, s.anchor_wall_ns], dtype=np.int64)
    cols = {k: getattr(s, k) for k in ("intended_ns", "sent_ns", "done_ns", "status", "outcome", "bytes_in", "worker")}
    np.savez(tmp_path / "old.npz", clock=clock, **cols)
    back = read_samples(tmp_path / "old.npz")
    assert np.array_equal(back.sent_ns, s.sent_ns) and np.array_equal(back.done_ns, s.done_ns)


def _worker_rows(worker: int, workers: int, n: int) -> dict[str, np.ndarray]:
    intended = (np.arange(n, dtype=np.int64) * workers + worker) * 50_000 + 10_000_000  # 20k/s in all
    return {
        "intended_ns": intended,
        "sent_ns": intended + 30_000,
        "done_ns": intended + 1_000_000 + (np.arange(n) % 7) * 100_000,
        "status": np.full(n, 200, dtype=np.int16),
        "outcome": np.zeros(n, dtype=np.int8),
        "bytes_in": np.full(n, 612, dtype=np.int32),
        "worker": np.full(n, worker, dtype=np.int16),
    }


def test_a_run_written_in_parts_reads_back_whole_part_by_part_and_thinned(tmp_path):
    """What `redline run` writes as it goes (store/parts.py), read three ways."""
    from redline.analysis.run_summary import summarize, summarize_parts
    from redline.model.samples import SampleClock
    from redline.store import RunFolder

    (tmp_path / "run.json").write_text("{}")
    folder = RunFolder(tmp_path)
    clock = SampleClock(10_000_000, 10_000_000, 1, 2)
    writer = folder.sample_writer()
    writer.part_rows = 3000  # several parts per worker
    writer.begin(clock, (), ())
    for chunk in range(10):
        for w in range(2):
            cols = _worker_rows(w, 2, 10_000)
            writer.add(w, {k: v[chunk * 1000 : (chunk + 1) * 1000] for k, v in cols.items()})
    writer.close()
    paths = sorted((tmp_path / "samples").glob("w*.npz"))
    assert len(paths) == 8 and folder.samples_name() == "samples/"  # 4 parts of ≤ 3000 rows per worker

    whole = folder.read_samples()
    assert len(whole) == 20_000 and np.all(np.diff(whole.intended_ns) == 50_000)
    expected = summarize(whole, 1.0, 20_000.0)
    assert summarize_parts(folder.sample_parts(), clock, 1.0, 20_000.0) == expected
    assert expected.scheduled == 20_000 and expected.achieved_rps > 19_000

    thinned, k = folder.read_samples_thinned(6_000)
    assert k == 4 and len(thinned) == 5_000
    for w in range(2):  # every 4th row of each worker, counted on across its parts
        assert np.array_equal(thinned.intended_ns[thinned.worker == w], whole.intended_ns[whole.worker == w][::4])
    per_second = np.bincount((thinned.intended_ns - clock.start_ns) // 100_000_000) * k
    assert np.all(per_second == 2000)  # scaled by k, every 0.1 s holds its 2000 rows
    assert folder.read_samples_thinned(50_000)[1] == 1


def test_summary_percentiles_come_from_hdr_within_its_precision():
    from redline.analysis.run_summary import summarize

    rng = np.random.default_rng(4)
    n = 50_000
    intended = np.arange(n, dtype=np.int64) * 100_000
    latency = rng.lognormal(np.log(5e6), 0.6, n).astype(np.int64)
    s = Samples(
        intended_ns=intended, sent_ns=intended, done_ns=intended + latency, status=np.full(n, 200, dtype=np.int16),
        outcome=np.zeros(n, dtype=np.int8), bytes_in=np.zeros(n, dtype=np.int32), worker=np.zeros(n, dtype=np.int16),
        start_ns=0, measure_from_ns=0, anchor_mono_ns=0, anchor_wall_ns=0,
    )  # fmt: skip
    figures = summarize(s, 5.0, 10_000.0).latency_ms
    for p in (50, 90, 99, 99.9):
        exact = np.percentile(latency, p) / 1e6
        assert abs(figures[f"p{p:g}"] - exact) <= exact * 0.002 + 0.002, p  # 3 digits, plus rank rounding
    assert figures["mean"] == round(latency.mean() / 1e6, 4) and figures["max"] == round(latency.max() / 1e6, 4)
