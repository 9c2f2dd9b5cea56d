import subprocess
import sys


def test_fewshot_does_not_import_rl_or_gymnasium() -> None:
    code = (
        "import sys\n"
        "import metarl.fewshot.datasets, metarl.fewshot.episodes, metarl.fewshot.models\n"
        "import metarl.fewshot.losses, metarl.fewshot.protonets\n"
        "bad = [m for m in ('gymnasium', 'envs', 'metarl.rl', 'higher') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
