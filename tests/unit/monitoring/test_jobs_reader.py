"""One reader of job results: the monitoring job, the dashboard's world view and the
report list the same jobs in the same order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ladis_core import store
from ladis_core.monitoring import jobs, world
from ladis_core.report import _gather
from ladis_core.store import layout
from tests.support.factories import make_job


def _world(tmp_path: Path) -> tuple[str, str]:
    uri = str(tmp_path / "world") + "/"
    monitoring = layout.monitoring_uri(uri, "digits")
    # stored times in other offsets sort by the moment they name, not by their text:
    # 10:30+02:00 is 08:30 UTC, before 09:00Z
    stored = {
        "2026-11-23T09-00-00Z": "2026-11-23T09:00:00+00:00",
        "2026-11-23T08-30-00Z": "2026-11-23T10:30:00+02:00",
        "2026-11-23T08-00-00Z": "2026-11-23T08:00:00Z",
        "2026-11-23T07-00-00Z": "not a time",  # unreadable: its job id tells the time
    }
    for job_id, scheduled in stored.items():
        job = make_job(job_id=job_id, scheduled_at=scheduled)
        store.write_json(layout.results_uri(monitoring, job_id), job.to_dict())
    store.write_bytes(layout.results_uri(monitoring, "2026-11-23T06-00-00Z"), b"{corrupt")
    (Path(monitoring) / "2026-11-23T05-00-00Z").mkdir()  # a job still running
    return uri, monitoring


def test_every_reader_gives_the_same_jobs_in_the_same_order(tmp_path: Path) -> None:
    uri, monitoring = _world(tmp_path)
    expected = [
        "2026-11-23T07-00-00Z",
        "2026-11-23T08-00-00Z",
        "2026-11-23T08-30-00Z",
        "2026-11-23T09-00-00Z",
    ]
    skipped: list[str] = []
    assert [j.job_id for j in jobs.load_jobs(monitoring, on_skip=skipped.append)] == expected
    assert skipped == [
        "job 2026-11-23T06-00-00Z was skipped: "
        f"{layout.results_uri(monitoring, '2026-11-23T06-00-00Z')}: not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    ]
    index = world.job_index(uri, "digits")
    assert [j.job_id for j in world.load_jobs(uri, "digits", job_ids=index.job_ids)] == expected
    assert [j.job_id for j in world.load_jobs(uri, "digits")] == expected
    notes: list[str] = []
    assert [j.job_id for j in _gather.jobs_between(monitoring, None, None, notes=notes)] == expected
    assert len(notes) == 1 and "2026-11-23T06-00-00Z" in notes[0]


def test_a_time_range_selects_jobs_by_their_ids(tmp_path: Path) -> None:
    _, monitoring = _world(tmp_path)
    start = datetime(2026, 11, 23, 8, 15, tzinfo=UTC)
    chosen = jobs.load_jobs(monitoring, start=start, end=datetime(2026, 11, 23, 9, tzinfo=UTC))
    assert [j.job_id for j in chosen] == ["2026-11-23T08-30-00Z", "2026-11-23T09-00-00Z"]
