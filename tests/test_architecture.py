"""The house rules, checked on the source: no import cycles, dependencies point down, one map."""

import ast
import re

from tests.support.cluster import BASE_DIR
from tests.support.imports import cycles, import_graph, parsed

# Who may not import whom. A module under the first prefix never imports one under any of the others.
WEB_FACING = ("offload.api", "offload.web", "offload.admin", "offload.notifications")
USER_ACTIONS = ("offload.actions", "offload.access")
FORBIDDEN = {
    # Wrappers around outside programs and services take plain values: no models, no metrics
    # (a wrapper's figures reach metrics through a hook the metrics subscribe to).
    "offload.lib": (
        "offload.jobs",
        "offload.handlers",
        *WEB_FACING,
        *USER_ACTIONS,
        "search",
        "offload.models",
        "offload.metrics",
    ),
    # The spine knows neither the API cache nor the publisher: they subscribe to its event signal.
    "offload.jobs": ("offload.handlers", *WEB_FACING, *USER_ACTIONS, "search"),
    "offload.handlers": (*WEB_FACING, "search"),
    "offload.metrics": ("offload.handlers", *WEB_FACING, "search"),
    # Token lookup and the limiter are services the web-facing layers share, not parts of one of them.
    "offload.tokens": WEB_FACING,
    "offload.ratelimit": WEB_FACING,
    "offload.web": ("offload.api", "offload.notifications", "offload.admin"),
    "offload.notifications": ("offload.api", "offload.web", "offload.admin"),
    # Model signals keep derived state; the API cache subscribes to what they announce.
    "offload.signals": WEB_FACING,
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


def package_of(module: str) -> str:
    """The package a module belongs to: offload's rooms (offload.jobs …) and its top-level modules each
    count as one, search and config as one each."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "offload" else parts[0]


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        package = package_of(module)
        graph.setdefault(package, set()).update(package_of(t) for t in targets)
    return {package: targets - {package} for package, targets in graph.items()}


def test_there_is_no_import_cycle_between_the_projects_packages():
    # No module cycle is not enough: lib → metrics → lib through different modules still ties the rooms.
    graph = package_graph()
    found = cycles(graph)
    edges = [
        (module, target)
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        for cycle in found
        if package_of(module) in cycle and package_of(target) in cycle and package_of(module) != package_of(target)
    ]
    assert found == [], edges


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


def spine_public_names() -> set[str]:
    """What `offload/jobs/__init__.py` lists in `__all__`: the spine's public API."""
    tree = parsed(BASE_DIR / "offload" / "jobs" / "__init__.py")
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("offload/jobs/__init__.py has no __all__")


def test_the_spine_is_reached_only_through_its_package():
    # Outside offload/jobs/, an import names `offload.jobs` alone and takes only what its
    # __all__ lists (a few inner modules among them, exported whole as namespaces).
    public = spine_public_names()
    wrong = []
    for package in ("offload", "search", "config"):
        for path in (BASE_DIR / package).rglob("*.py"):
            relative = path.relative_to(BASE_DIR)
            if relative.parts[:2] == ("offload", "jobs") or "migrations" in relative.parts:
                continue
            for node in ast.walk(parsed(path)):
                if isinstance(node, ast.Import):
                    wrong += [(str(relative), a.name) for a in node.names if a.name.startswith("offload.jobs.")]
                elif isinstance(node, ast.ImportFrom) and node.module and under(node.module, "offload.jobs"):
                    if node.module != "offload.jobs":
                        wrong.append((str(relative), node.module))
                    else:
                        wrong += [(str(relative), f"offload.jobs.{a.name}") for a in node.names if a.name not in public]
    assert sorted(wrong) == []


def test_the_spines_transitions_leave_their_sql_to_the_jobs_queryset():
    # INSERT … ON CONFLICT and UPDATE … RETURNING live on JobQuerySet (offload/models.py), named
    # for what they do; the state functions call them.
    text = (BASE_DIR / "offload" / "jobs" / "transitions.py").read_text()
    internals = ("InsertQuery", "UpdateQuery", "OnConflict", "RETURNING", ".raw(", "get_compiler", "cursor(")
    assert [name for name in internals if name in text] == []


def test_handlers_are_given_their_target_and_never_load_it_themselves():
    # The runner loads and checks a job's target once (offload/jobs/runner.py, load_target).
    handlers = [*(BASE_DIR / "offload" / "handlers").rglob("*.py"), BASE_DIR / "search" / "tasks.py"]
    assert [str(path.relative_to(BASE_DIR)) for path in handlers if "target_id" in path.read_text()] == []


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
