"""atheris entry point for the IKE engine (:mod:`.engine_target`).

Long run (from the repository root)::

    .venv/bin/python -m tests.fuzz.fuzz_engine -max_total_time=600

An input is ``step | mode | argument`` (see :mod:`.engine_target`); the seeds are the
real plaintext of every step of a recorded connection plus every mutation mode at every
step.  Runs are deterministic (seeded RNGs), so a crash file replays:
``python -m tests.fuzz.fuzz_engine build/fuzz/engine/crash-<hash>``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz.atheris_main import run


def _load():
    from fuzz.engine_target import check_engine, engine_seeds, fuzz_env  # noqa: PLC0415 - instrumented

    fuzz_env()  # load the configuration once, before the first input
    return check_engine, engine_seeds


if __name__ == "__main__":
    run("engine", _load)
