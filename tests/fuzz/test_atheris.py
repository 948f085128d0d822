"""Short coverage-guided fuzz runs with a fixed seed, part of the normal test suite.

Each target's atheris entry point runs in a subprocess (libFuzzer exits the process it
runs in) for a fixed number of inputs with ``-seed=1``, starting from its seed corpus in
a fresh directory, with a time cap so a loaded machine cannot stretch the suite.  The
run must finish without a crash file, after real work (the coverage it reports is at
least what the seeds alone reach on a quiet machine, so instrumentation is on).

The long runs are the same commands without ``-runs`` (see ``tests/fuzz/__init__.py``).
Skipped when atheris is not installed (``pip install -e '.[test]'`` brings it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

REPO = Path(__file__).resolve().parents[2]

#: target -> (module, inputs, time cap in seconds, least coverage to reach)
RUNS = {
    "codec": ("tests.fuzz.fuzz_codec", 60_000, 25, 250),
    "esp": ("tests.fuzz.fuzz_esp", 20_000, 25, 100),
    "engine": ("tests.fuzz.fuzz_engine", 400, 40, 1500),
}


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(RUNS))
def test_fixed_seed_fuzz_run(target, tmp_path):
    module, runs, cap, least_coverage = RUNS[target]
    command = [sys.executable, "-m", module, f"-runs={runs}", "-seed=1", f"-max_total_time={cap}",
               f"-artifact_prefix={tmp_path}/", "-rss_limit_mb=2048", str(tmp_path / "corpus")]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=cap + 120)
    log = proc.stderr
    report = "\n".join(line for line in log.splitlines() if not line.startswith("INFO: Instrumenting"))[-6000:]
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("oom-*")) + sorted(tmp_path.glob("leak-*"))
    assert proc.returncode == 0 and not crashes, f"{' '.join(command)} failed:\n{report}"
    done = re.search(r"Done (\d+) runs", log)
    coverage = [int(c) for c in re.findall(r"cov: (\d+)", log)]
    assert done and int(done.group(1)) > 0, report
    assert coverage and max(coverage) >= least_coverage, f"coverage {max(coverage, default=0)}:\n{report}"
