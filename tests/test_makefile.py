"""The Makefile's housekeeping rules: `clean` keeps var/, `clean-all` removes it, `schema` writes the OpenAPI file."""

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def make(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_clean_keeps_var_and_clean_all_removes_it(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "var" / "media" / "library").mkdir(parents=True)
    (tmp_path / "var" / "offload.sqlite3").write_text("the embedded run's database")
    (tmp_path / "var" / "test").mkdir()
    (tmp_path / ".venv").mkdir()
    done = make(tmp_path, "clean")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "offload.sqlite3").exists()
    assert (tmp_path / "var" / "media" / "library").is_dir()
    assert not (tmp_path / ".venv").exists()
    assert not (tmp_path / "var" / "test").exists()
    done = make(tmp_path, "clean-all")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "var").exists()


def test_make_schema_writes_the_openapi_file(tmp_path):
    target = tmp_path / "openapi.yml"
    # The virtualenv is already set up here: do not let make reinstall it.
    done = make(ROOT, "-o", "venv", "-o", ".venv/.installed", "schema", f"SCHEMA={target}")
    assert done.returncode == 0, done.stdout + done.stderr
    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.")
    assert "/api/v1/jobs/" in document["paths"]


def test_make_test_fast_runs_the_tests_not_marked_slow(tmp_path):
    """The quick loop: the same services as `make test`, only the tests without the slow marker."""
    report = tmp_path / "report.txt"
    # A file of two tests, one slow: only the other may run.
    probe = ROOT / "tests" / "test_zz_make_test_fast_probe.py"
    probe.write_text(
        "import pytest\n\n"
        "def test_quick():\n"
        f"    open({str(report)!r}, 'a').write('quick\\n')\n\n"
        "@pytest.mark.slow\n"
        "def test_slow():\n"
        f"    open({str(report)!r}, 'a').write('slow\\n')\n"
    )
    try:
        done = make(
            ROOT,
            *("-o", "dev-venv", "-o", "test-system-deps", "-o", "services"),
            "test-fast",
            f"PYTEST_ARGS={probe.relative_to(ROOT)} -p no:cacheprovider",
        )
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    assert report.read_text().split() == ["quick"]
