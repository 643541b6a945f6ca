"""The house rules, checked on the source: no import cycles, dependencies point down, one map."""

import re

from tests.support.cluster import BASE_DIR
from tests.support.imports import cycles, import_graph

# Who may not import whom. A module under the first prefix never imports one under any of the others.
WEB_FACING = ("offload.api", "offload.web", "offload.admin", "offload.notifications")
USER_ACTIONS = ("offload.actions", "offload.access")
FORBIDDEN = {
    # Wrappers around outside programs and services know no domain workflow.
    "offload.lib": ("offload.jobs", "offload.handlers", *WEB_FACING, *USER_ACTIONS, "search"),
    # The spine knows neither the API cache nor the publisher: they subscribe to its event signal.
    "offload.jobs": ("offload.handlers", *WEB_FACING, *USER_ACTIONS, "search"),
    "offload.handlers": (*WEB_FACING, "search"),
    "offload.metrics": ("offload.handlers", *WEB_FACING, "search"),
    "offload": ("search",),
}
# What search may use of offload: models, access, wrappers, the spine's public API and the
# registries it plugs into from SearchConfig.ready().
SEARCH_MAY_USE = (
    "offload.models",
    "offload.access",
    "offload.permissions",  # the permission model's Rule, for search's own permissions
    "offload.lib.",
    "offload.jobs",
    "offload.audit",
    "offload.api.caching",  # the API's conditional answers (ETag, 304), shared by the search endpoint
)
SEARCH_REGISTRIES = (
    "offload.admin.dashboard", "offload.admin.media", "offload.jobs.schedules", "offload.metrics.registry",
    "offload.web.health",
)  # fmt: skip


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_there_is_no_import_cycle_between_the_projects_modules():
    # Imports inside functions count: a lazy import that only dodges a cycle is a cycle.
    assert cycles(import_graph()) == []


def test_dependencies_point_down_the_layers():
    wrong = []
    for module, targets in import_graph().items():
        for layer, forbidden in FORBIDDEN.items():
            if under(module, layer):
                wrong += [(module, t) for t in targets if any(under(t, f) for f in forbidden)]
    assert wrong == []


def test_search_uses_only_offloads_public_parts():
    wrong = []
    for module, targets in import_graph().items():
        if not under(module, "search"):
            continue
        allowed = SEARCH_MAY_USE + (SEARCH_REGISTRIES if module == "search.apps" else ())
        wrong += [
            (module, t)
            for t in targets
            if under(t, "offload") and not any(under(t, a.rstrip(".")) or t.startswith(a) for a in allowed)
        ]
    assert wrong == []


def test_the_spine_and_handlers_are_reached_through_the_spines_public_api():
    # Handlers and search import `offload.jobs`, not its inner modules (schedules and queue aside).
    inner = []
    for module, targets in import_graph().items():
        if under(module, "offload.handlers") or (under(module, "search") and module != "search.apps"):
            inner += [(module, t) for t in targets if t.startswith("offload.jobs.") and t != "offload.jobs.kinds"]
    assert inner == []


def test_runtime_code_ships_no_test_helpers():
    for package in ("offload", "search", "config"):
        for path in (BASE_DIR / package).rglob("*.py"):
            text = path.read_text()
            assert "from tests" not in text and "import tests" not in text, path
            assert path.name not in ("testing.py", "test_utils.py"), path


def test_the_readmes_map_names_every_room_and_only_rooms_that_exist():
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:offload|search|config|tests|templates|bench|deploy|docs|scripts)/[\w/.]*)`", section))
    assert named, "the map names no paths"
    missing = sorted(path for path in named if not (BASE_DIR / path).exists())
    assert missing == []
    rooms = {f"offload/{p.name}/" for p in (BASE_DIR / "offload").iterdir() if (p / "__init__.py").exists()}
    rooms -= {"offload/migrations/", "offload/management/"}
    assert sorted(rooms - named) == []
