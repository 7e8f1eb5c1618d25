"""The chart's Grafana dashboard works on a real run: Prometheus 2.42 scrapes the served CPU twin under
``triton-llm bench`` load, and every panel's every query parses and returns data.

How the run is made (variables, the ``namespace``/``pod`` target labels) is in ``_dashboard_run``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helm import _dashboard_run as dash


@pytest.fixture(scope="module")
def run(triton_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dash.TwinRun:
    return dash.twin_run(
        triton_server.grpc_url,
        f"http://127.0.0.1:{triton_server.server.metrics_port}/metrics",
        tokenizer=Path(triton_server.engine.tokenizer_dir),
        workdir=tmp_path_factory.mktemp("dashboard-run"),
    )


def test_the_namespace_variable_resolves_to_the_scraped_namespace(run: dash.TwinRun) -> None:
    assert run.variables["namespace"] == dash.NAMESPACE
    assert run.variables["__rate_interval"] == "4s"  # Grafana's rule for a 1 s step and 1 s scrape


def test_every_panel_query_returns_data_after_the_load(run: dash.TwinRun) -> None:
    """Prometheus accepts every expr (a parse error raises in the fixture) and each returns a series
    with finite values; a panel that cannot work on the twin must be listed with its reason."""
    titles = {p.title for p in run.panels}
    assert set(dash.TWIN_GAPS) <= titles
    empty = []
    for panel in run.panels:
        for target in panel.targets:
            if not any(s.finite for s in target.series) and panel.title not in dash.TWIN_GAPS:
                empty.append(f"{panel.title} / {target.ref_id}: {target.query}")
    assert not empty, "queries with no data on the twin:\n" + "\n".join(empty)


def test_the_twin_gaps_are_real(triton_server: Any, run: dash.TwinRun) -> None:
    """Each panel excused from showing data lacks its metric on the twin's Triton; once a Triton that
    exports it serves the twin, this fails and the excuse must go."""
    import urllib.request

    url = f"http://127.0.0.1:{triton_server.server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        exposition = response.read().decode()
    assert "nv_inference_request_duration_us" in exposition  # the scrape itself works
    assert dash.FIRST_RESPONSE not in exposition
    for panel in run.panels:
        if panel.title in dash.TWIN_GAPS:
            assert all(dash.FIRST_RESPONSE in t.query for t in panel.targets), panel.title


def test_every_legend_names_labels_the_series_carry(run: dash.TwinRun) -> None:
    """A ``{{label}}`` in a legendFormat is a label of the returned series (a wrong label shows blank)."""
    for panel in run.panels:
        for target in panel.targets:
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.legend):
                for series in target.series:
                    assert label in series.labels, (panel.title, target.ref_id, label, series.labels)


def test_the_traffic_panels_saw_the_load(run: dash.TwinRun) -> None:
    """Tokens/s, requests/s, active requests and KV-cache use rise above 0 during the run."""
    moving = {
        ("Throughput", "A"),
        ("Throughput", "B"),
        ("Queue: requests in the in-flight batcher", "B"),
        ("KV cache utilisation", "A"),
    }
    seen = set()
    for panel in run.panels:
        for target in panel.targets:
            if (panel.title, target.ref_id) in moving:
                seen.add((panel.title, target.ref_id))
                assert max(v for s in target.series for _, v in s.finite) > 0, (panel.title, target.ref_id)
    assert seen == moving


def test_no_query_leaves_a_variable_unsubstituted(run: dash.TwinRun) -> None:
    for panel in run.panels:
        for target in panel.targets:
            assert not re.search(r"\$\w|\[\[", target.query), target.query


def test_a_variable_without_a_value_is_a_finding() -> None:
    with pytest.raises(dash.DashboardFinding, match=r"\$model"):
        dash.substitute('up{model="$model"}', {"namespace": "x"})
    # a regex group reference such as label_replace's "$1" is PromQL, not a Grafana variable
    assert (
        dash.substitute('label_replace(up, "a", "$1", "b", "(.*)")', {})
        == 'label_replace(up, "a", "$1", "b", "(.*)")'
    )


def test_the_rendered_picture_is_small(run: dash.TwinRun, tmp_path: Path) -> None:
    png = tmp_path / "dashboard.png"
    dash.render(run, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size < 300_000
