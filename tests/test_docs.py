"""Docs that stay true: every setting read from the environment is in docs/configuration.md's table, and more."""

import ast
import re
import sys
from pathlib import Path

from tests.support.imports import parsed

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
HOW_IT_WORKS = (ROOT / "docs" / "how-it-works.md").read_text()


def variables_the_settings_read() -> set[str]:
    """Every environment variable config/settings.py reads: env_*("NAME", …) and os.environ.get("NAME")."""
    tree = parsed(ROOT / "config" / "settings.py")
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id.startswith("env_"):
            names.add(first.value)
        elif isinstance(func, ast.Attribute) and func.attr in ("get", "getenv") and "environ" in ast.unparse(func):
            names.add(first.value)
    return names


def variables_the_configuration_table_lists() -> set[str]:
    rows = [line for line in CONFIGURATION.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_variable_the_settings_read_is_in_the_configuration_table():
    read = variables_the_settings_read()
    assert len(read) > 50  # the parser found them
    missing = read - variables_the_configuration_table_lists()
    assert not missing, f"read by config/settings.py but not in docs/configuration.md's table: {sorted(missing)}"


def test_the_check_sees_a_new_undocumented_variable(tmp_path, monkeypatch):
    fake = tmp_path / "config"
    fake.mkdir()
    (fake / "settings.py").write_text(
        (ROOT / "config" / "settings.py").read_text() + '\nNEW = env_str("OFFLOAD_BRAND_NEW", "")\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert "OFFLOAD_BRAND_NEW" in variables_the_settings_read()
    assert "OFFLOAD_BRAND_NEW" not in variables_the_configuration_table_lists()


def test_the_docs_point_inside_the_repository():
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text()
        assert "../shared" not in text and "CONTRACT.md" not in text, path
    assert "docs/api.md" in README
    assert (ROOT / "docs" / "api.md").is_file()


def test_the_code_cites_the_documents_in_the_repository_only():
    """The public interface is docs/api.md: no module cites a spec that is not in the repository."""
    outside = ("CONTRACT", "../shared")
    cited = []
    for folder in ("offload", "search", "config", "tests", "bench", "scripts", "templates", "deploy"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".js", ".html", ".css", ".sh", ".service", ".conf", ".yml", ".toml"):
                continue
            if path == Path(__file__).resolve():
                continue
            text = path.read_text(errors="replace")
            cited += [f"{path.relative_to(ROOT)}: {word}" for word in outside if word in text]
    assert not cited, cited


def test_the_configuration_states_the_typesense_keys_real_default():
    row = next(line for line in CONFIGURATION.splitlines() if line.startswith("| `TYPESENSE_URL`, `TYPESENSE_API_KEY`"))
    assert "`offload-dev-key`" in row
    assert (
        'TYPESENSE_API_KEY = env_secret("TYPESENSE_API_KEY", "offload-dev-key")'
        in (ROOT / "config" / "settings.py").read_text()
    )


def test_scaling_and_how_it_works_agree_on_which_redis_holds_which_role():
    scaling = (ROOT / "docs" / "scaling.md").read_text()
    redis = scaling[scaling.index("## Redis") : scaling.index("## PostgreSQL")]
    assert "Every role reads `REDIS_URL`" not in redis
    assert "**cache** (`REDIS_CACHE_URL`" in redis and "allkeys-lru" in redis
    assert "**state** (`REDIS_URL`)" in redis and "noeviction" in redis
    assert re.search(r"`REDIS_CACHE_URL`\s+points at the first, `REDIS_URL` at the second", HOW_IT_WORKS)


def test_the_readme_shows_the_two_commands_first():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make run", "make test"]


def test_the_readme_is_a_guide_that_leads_to_every_document():
    """The README stays short; reference lives in docs/, and the README names each document."""
    assert len(README.splitlines()) <= 160
    unnamed = sorted(p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in README)
    assert unnamed == []
    assert '"Security: what has been tried against it"' in README
    assert "## Security: what has been tried against it" in (ROOT / "docs" / "operations.md").read_text()
