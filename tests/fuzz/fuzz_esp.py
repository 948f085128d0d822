"""atheris entry point for the ESP input path (:mod:`.esp_target`).

Long run (from the repository root)::

    .venv/bin/python -m tests.fuzz.fuzz_esp -max_total_time=600

Seeds: real packets of every configuration, forged packets with valid ICVs and
in-order/out-of-order/replayed sequence numbers, and edits of real packets.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz.atheris_main import run


def _load():
    from fuzz.esp_target import check_esp, esp_seeds  # noqa: PLC0415 - imported under instrumentation

    return check_esp, esp_seeds


if __name__ == "__main__":
    run("esp", _load)
