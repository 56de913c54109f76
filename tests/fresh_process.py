"""Run a script in a fresh interpreter that cannot import this repository, the way a user loads a Hub checkpoint.

A uniquely named module on the tests' ``pythonpath`` (pyproject.toml), shared by the remote-code tests of every
package: the child gets no ``PYTHONPATH``, no network and its own ``HF_MODULES_CACHE``, and prints one JSON line last.
"""

import json
import os
import subprocess
import sys


def run_fresh_python(script: str, *args: str, cwd, modules_dir, timeout: int = 300, env: dict | None = None):
    """``(report, stderr)``: the JSON object on the last stdout line of ``python -c script *args`` run in ``cwd``.

    ``modules_dir`` becomes ``HF_MODULES_CACHE`` (remote code is copied there, not imported from the repository);
    ``env`` adds or overrides variables. A non-zero exit fails the calling test with the end of the child's stderr.
    """
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(modules_dir), "PYTHONPATH": ""}
    child_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=child_env, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr
