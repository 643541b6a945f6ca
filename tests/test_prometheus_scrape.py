"""Debian's Prometheus with the shipped configuration, scraping the running app."""

import shutil
import subprocess

import pytest
import requests
import yaml

from offload.metrics.services import lanes
from tests.support.cluster import BASE_DIR, wait_for
from tests.support.services import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus package is not installed"),
]
SHIPPED = BASE_DIR / "deploy" / "prometheus"
NEW_SERIES = ("offload_workers_alive", "offload_search_outbox_backlog", "offload_search_up")


@pytest.fixture
def prometheus(tmp_path, asgi_server):
    """The shipped prometheus.yml, pointed at a running web server and sped up to scrape every second."""
    web = asgi_server()
    config = yaml.safe_load((SHIPPED / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(SHIPPED / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{web.port}"]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            return requests.get(f"{url}/-/ready", timeout=1).status_code == 200

        wait_for(ready, timeout=30, what="Prometheus to be ready", interval=0.2, ignoring=(requests.RequestException,))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def api(url: str, path: str, **params: str):
    body = requests.get(f"{url}/api/v1/{path}", params=params, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]


def test_every_target_is_up_the_rules_load_and_the_new_series_are_scraped(prometheus):
    def targets_up():
        targets = api(prometheus, "targets")["activeTargets"]
        seen.append([(t["health"], t["lastError"]) for t in targets])
        return targets and all(t["health"] == "up" for t in targets)

    seen: list = []

    try:
        wait_for(targets_up, timeout=30, what="every target up")
    except AssertionError:
        raise AssertionError(f"targets: {seen[-1:]}") from None
    shipped = {
        rule["alert"]
        for group in yaml.safe_load((SHIPPED / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }

    def rules_evaluated():
        rules = [rule for group in api(prometheus, "rules")["groups"] for rule in group["rules"]]
        return {r["name"] for r in rules} == shipped and all(r["health"] == "ok" for r in rules)

    wait_for(rules_evaluated, timeout=30, what="every shipped rule loaded and evaluated without error")
    for series in NEW_SERIES:
        wait_for(lambda series=series: api(prometheus, "query", query=series)["result"], timeout=30, what=series)
    by_lane = {r["metric"]["lane"] for r in api(prometheus, "query", query="offload_workers_alive")["result"]}
    assert by_lane == set(lanes())
