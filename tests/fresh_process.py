"""Run a script in a fresh interpreter that cannot import this repository, the way a user loads a Hub checkpoint.

A uniquely named module on the tests' ``pythonpath`` (pyproject.toml), shared by the remote-code tests of every
package: the child gets no ``PYTHONPATH``, no network and its own ``HF_MODULES_CACHE``, cannot import the repository's
packages (installed in the tests' venv, so they are blocked in ``sys.modules`` before the script runs), and prints one
JSON line last.
"""

import json
import os
import subprocess
import sys

# every top-level package of this repository: a Hub checkpoint's remote code must need none of them
REPOSITORY_PACKAGES = ("alpine_hf", "benchmarks", "compress_utils", "flab_hf", "model_cards", "xtc_hf")
# a None entry in sys.modules makes `import name` raise ImportError
BLOCK = "import sys\nsys.modules.update(dict.fromkeys({names!r}))\n"


def run_fresh_python(script: str, *args: str, cwd, modules_dir, timeout: int = 300, env: dict | None = None):
    """``(report, stderr)``: the JSON object on the last stdout line of ``python -c script *args`` run in ``cwd``.

    ``modules_dir`` becomes ``HF_MODULES_CACHE`` (remote code is copied there, not imported from the repository);
    ``env`` adds or overrides variables. A non-zero exit fails the calling test with the end of the child's stderr.
    """
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(modules_dir), "PYTHONPATH": ""}
    child_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", BLOCK.format(names=REPOSITORY_PACKAGES) + script, *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=child_env, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr
