"""deploy/: the alerting rules pass promtool, and every series they and the dashboard use exists."""

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from django.core.cache import cache

from offload import jobs
from offload.jobs import runner
from offload.lib import limits
from tests.support.cluster import BASE_DIR

DEPLOY = BASE_DIR / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
REQUIRED_ALERTS = {
    "OffloadJobFailureRatioHigh",
    "OffloadOldestQueuedJobTooOld",
    "OffloadSearchSyncLagHigh",
    "OffloadHttp5xxRatioHigh",
    "OffloadHttpLatencyP95High",
    "OffloadRedisDown",
    "OffloadNoWorkersAlive",
    "OffloadWorkerLaneDead",
    "OffloadSearchOutboxGrowing",
    "OffloadSearchDown",
}
RUNBOOKS = BASE_DIR / "docs" / "runbooks.md"
# Series names in PromQL: Offload's own and django-prometheus'.
SERIES = re.compile(r"\b((?:offload|django)_[a-z0-9_]+)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)


def test_the_alerting_rules_pass_promtool_check_rules():
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_alerting_rules_pass_their_unit_tests():
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_scrape_config_passes_promtool_check_config():
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_required_alert_is_defined_with_a_for_clause():
    text = ALERTS.read_text()
    names = set(re.findall(r"^\s*- alert: (\w+)", text, re.M))
    assert names >= REQUIRED_ALERTS
    assert text.count("for: ") == len(names)
    assert re.search(r"OffloadJobFailureRatioHigh[\s\S]*?> 0\.10\s+for: 10m", text)


def _alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6} (.+)$", markdown, re.M)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_a_runbook_section_that_says_what_to_check_and_do():
    runbooks = RUNBOOKS.read_text()
    anchors = _anchors(runbooks)
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", runbooks, re.M | re.S))
    for rule in _alerts():
        url = rule["annotations"].get("runbook_url", "")
        assert url == f"docs/runbooks.md#{rule['alert'].lower()}", rule["alert"]
        assert url.split("#")[1] in anchors, rule["alert"]
        body = sections[rule["alert"]]
        assert "Check" in body and "Do:" in body, rule["alert"]


def test_the_5xx_ratio_leaves_out_probes_and_scrapes():
    rule = next(r for r in _alerts() if r["alert"] == "OffloadHttp5xxRatioHigh")
    assert rule["expr"].count('view!~"metrics|healthz-.*"') == 2


def test_the_dashboard_filters_every_query_by_a_host_variable():
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert 'up{job="offload"}' in variables["host"]["definition"]
    assert variables["host"]["includeAll"] is True
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    for expr in exprs:
        selectors = SERIES.findall(expr)
        assert expr.count('instance=~"$host"') == len(selectors), expr
    assert any("offload_workers_alive" in e and "by (lane)" in e for e in exprs)
    assert any("offload_search_outbox_backlog" in e for e in exprs)
    assert any("offload_search_up" in e for e in exprs)


def _dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "offload.json").read_text())


def test_the_grafana_dashboard_is_importable_json_with_a_query_per_panel():
    dashboard = _dashboard()
    assert dashboard["title"] == "Offload"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert all(p["targets"] and all(t["expr"] for t in p["targets"]) for p in panels)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


@pytest.mark.django_db
def test_every_series_the_alerts_and_the_dashboard_query_is_exported(client, alice, django_capture_on_commit_callbacks):
    # Make each kind of series exist at least once: a job run, a request, a rate-limit decision.
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = jobs.enqueue("system.noop", user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        runner.execute(job.pk)
    limits.acquire("deploy-test", uuid.uuid4().hex, 5, 60)
    key = f"deploy-test-{uuid.uuid4().hex}"
    cache.set(key, 1)
    cache.get(key)
    client.get("/healthz/live")
    exported = client.get("/metrics").content.decode()
    names = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if line and not line.startswith("#")}
    queries = ALERTS.read_text() + " ".join(
        t["expr"] for p in _dashboard()["panels"] if p["type"] != "row" for t in p["targets"]
    )
    wanted = set(SERIES.findall(queries))
    missing = wanted - names
    assert not missing, f"queried but never exported: {sorted(missing)}"


def test_the_operations_guide_points_operators_at_the_deploy_files():
    guide = (Path(BASE_DIR) / "docs" / "operations.md").read_text()
    assert "deploy/prometheus/alerts.yml" in guide
    assert "deploy/grafana/offload.json" in guide
