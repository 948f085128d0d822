"""What the three ``fuzz_*`` entry points share: paths, the seed corpus, atheris setup.

An entry point is run as ``python -m tests.fuzz.fuzz_<target> [libFuzzer options]
[corpus or crash files]`` from the repository root.  Without a corpus argument it uses
``build/fuzz/<target>/corpus`` (created and seeded with the real messages first) and
writes crash files next to it; a corpus directory given that does not exist yet or is
empty is seeded the same way; with a file argument libFuzzer replays that file.

Coverage: only ``ikegate`` is instrumented (``atheris.instrument_imports``), so the
fuzzer is guided by the project's branches, not by those of the standard library or of
the test harness.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def prepare_path() -> None:
    """Make ``fuzz.*`` and the engine tests' ``ike.*`` helpers importable, as under pytest
    (which puts ``tests/`` on ``sys.path``)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


def write_seeds(directory: Path, seeds: Iterable[bytes]) -> int:
    """Write seed inputs (named by their hash) into a corpus directory."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for seed in seeds:
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
        count += 1
    return count


def run(name: str, load: Callable[[], tuple[Callable[[bytes], None], Callable[[], Iterable[bytes]]]]) -> None:
    """Instrument ikegate, load the target (``load()`` returns ``(test_one_input,
    seeds)``), seed the corpus and hand over to libFuzzer (which exits the process)."""
    import atheris  # noqa: PLC0415 - only the entry points need it

    prepare_path()
    with atheris.instrument_imports(include=["ikegate"]):  # ikegate is first imported in load()
        test_one_input, seeds = load()
    argv = list(sys.argv)
    inputs = [a for a in argv[1:] if not a.startswith("-")]
    options = [a for a in argv[1:] if a.startswith("-")]
    if not inputs:
        base = REPO / "build" / "fuzz" / name
        corpus = base / "corpus"
        write_seeds(corpus, seeds())
        inputs = [str(corpus)]
        if not any(o.startswith("-artifact_prefix=") for o in options):
            options.append(f"-artifact_prefix={base}{os.sep}")
    elif not Path(inputs[0]).exists() or Path(inputs[0]).is_dir() and not any(Path(inputs[0]).iterdir()):
        write_seeds(Path(inputs[0]), seeds())  # a new corpus directory: start from the seeds
    # start from full-size inputs: the seeds are whole messages, and libFuzzer's default
    # slow length growth would spend the first thousands of runs on a few bytes
    if not any(o.startswith("-max_len=") for o in options):
        options.append("-max_len=4096")
    if not any(o.startswith("-len_control=") for o in options):
        options.append("-len_control=0")
    atheris.Setup([argv[0], *options, *inputs], test_one_input)
    atheris.Fuzz()
