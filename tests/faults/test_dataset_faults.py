"""A damaged dataset through the real CLI: a truncated archive is one ``error:`` line (exit code
2) that names the file and leaves no run behind; a corrupt image cache is rebuilt with one
warning and the run trains as with a sound one."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarl.cli import main
from metarl.run.metrics import read_metrics
from tests.fewshot.fewshot_data import omniglot_members, write_zip

OMNIGLOT = Path(__file__).resolve().parents[2] / "configs" / "fewshot" / "omniglot_5w1s_maml.yaml"
ARGS = [
    "--iterations", "2", "--eval-tasks", "2",
    "--set", "task.split=lake", "--set", "task.ways=3", "--set", "model.filters=4",
    "--set", "algo.meta_batch_size=2", "--set", "train.log_every=1",
    "--set", "algo.task_batching=loop", "--set", "eval.steps=1",
]  # fmt: skip


def _data(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "data" / "omniglot"
    root.mkdir(parents=True)
    for subset in ("background", "evaluation"):
        write_zip(root / f"images_{subset}.zip", omniglot_members(subset))
    monkeypatch.setenv("METARL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("METARL_CACHE", str(tmp_path / "cache"))
    return root


def test_truncated_archive_is_one_line_naming_it_and_leaves_no_run(tmp_path, monkeypatch, capsys):
    root = _data(tmp_path, monkeypatch)
    archive = root / "images_background.zip"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    run = tmp_path / "run"
    assert main(["train", str(OMNIGLOT), "--run-dir", str(run), *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert "images_background.zip" in err[0] and "not a readable zip" in err[0]
    assert not run.exists()


def test_corrupt_cache_is_rebuilt_with_one_warning(tmp_path, monkeypatch, capsys):
    _data(tmp_path, monkeypatch)
    assert main(["train", str(OMNIGLOT), "--run-dir", str(tmp_path / "first"), *ARGS]) == 0
    capsys.readouterr()
    caches = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert caches
    for path in caches:
        path.write_bytes(b"\x00garbage" * 10)
    with pytest.warns(UserWarning, match="is unreadable .*; rebuilding it") as caught:
        assert main(["train", str(OMNIGLOT), "--run-dir", str(tmp_path / "second"), *ARGS]) == 0
    assert len([w for w in caught if "rebuilding" in str(w.message)]) == len(caches)
    # the rebuilt data trains exactly as the sound cache did
    first, second = read_metrics(tmp_path / "first"), read_metrics(tmp_path / "second")
    assert len(first) == 3  # two training rows and the evaluation

    def numbers(rows):  # without the wall-clock keys
        return [{k: v for k, v in r.items() if not k.startswith(("perf/", "time"))} for r in rows]

    assert numbers(first) == numbers(second)
