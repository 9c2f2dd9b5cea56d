"""A run's provenance names the commit of the checkout it runs from, and no commit for an
installed copy, even one that lies inside another repository."""

import shutil
import subprocess

import pytest

from metarl.run import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def _repo_with_package_at(root, where: str) -> str:
    """A git repository at ``root`` holding a copy of this package's provenance module under
    ``where``; returns the path of the copy."""
    package = root / where / "metarl"
    (package / "run").mkdir(parents=True)
    copy = package / "run" / "provenance.py"
    shutil.copy(provenance.__file__, copy)
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return str(copy)


def _head(root) -> str:
    cmd = ["git", "-C", str(root), "rev-parse", "HEAD"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def test_a_checkout_gives_its_commit_and_says_when_it_is_changed(tmp_path, monkeypatch):
    copy = _repo_with_package_at(tmp_path, ".")
    monkeypatch.setattr(provenance, "__file__", copy)
    assert provenance.source_commit.__wrapped__() == _head(tmp_path)
    with open(copy, "a") as f:
        f.write("# changed\n")
    assert provenance.source_commit.__wrapped__() == _head(tmp_path) + "+dirty"


def test_an_installed_copy_inside_another_repository_has_no_commit(tmp_path, monkeypatch):
    copy = _repo_with_package_at(tmp_path, "venv/lib/site-packages")  # a project's venv
    monkeypatch.setattr(provenance, "__file__", copy)
    assert provenance.source_commit.__wrapped__() is None
