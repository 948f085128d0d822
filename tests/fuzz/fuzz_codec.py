"""atheris entry point for the IKE message codec (:mod:`.codec_target`).

Long run (from the repository root)::

    .venv/bin/python -m tests.fuzz.fuzz_codec -max_total_time=600

Seeds: every datagram of a recorded Windows-profile connection (both directions,
fragments included) and the plaintext of every encrypted one as an inner chain.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make the package importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fuzz.atheris_main import run


def _load():
    from fuzz.codec_target import check_codec  # noqa: PLC0415 - imported under instrumentation
    from fuzz.seeds import codec_seeds  # noqa: PLC0415

    return check_codec, codec_seeds


if __name__ == "__main__":
    run("codec", _load)
