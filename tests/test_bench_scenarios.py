"""The benchmark scenarios' own data generators keep up with the schema (run small, on PostgreSQL)."""

import pytest

from bench.harness import BenchContext
from bench.scenarios import ingest

pytestmark = pytest.mark.commits


@pytest.fixture
def small_ingest(monkeypatch):
    for name, value in {"ORDERS": 300, "USERS": 400, "PRODUCTS": 30, "LINKS": 60, "CLICKS": 500}.items():
        monkeypatch.setattr(ingest, name, value)


def test_the_ingest_scenario_runs_end_to_end_at_a_small_scale(app, stores, tmp_path, small_ingest):
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("the benchmark generates its data by PostgreSQL COPY")
    ctx = BenchContext(
        base_url="", database_uri=stores["database_uri"], redis_url=stores["redis_url"], env={}, tmp=tmp_path, app=app
    )
    (line,) = ingest.run(ctx)
    assert line["scenario"] == "ingest" and line["errors"] == 0, line
    assert line["rows_written"]["orders"] == 300 and line["replay_stale"] == 300
    assert not any(line["replay_added"].values()), line
