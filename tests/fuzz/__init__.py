"""Fuzzing of everything that reads bytes from the network (issue 8, item 1).

Three targets, each a plain function of one ``bytes`` input that raises only when it
found a bug (an exception that escapes, a broken invariant):

* :mod:`.codec_target`: ``ikegate.wire.codec`` (decode, and re-encode what decodes);
* :mod:`.esp_target`: ``ikegate.esp`` (``EspSa.decapsulate`` on mutated and forged packets);
* :mod:`.engine_target`: ``ikegate.ike.gateway.Gateway`` fed a whole Windows-profile
  connection (EAP included) whose message at one step is mutated, before or after the
  encryption, and then carried on.

The same functions run three ways:

* in the normal test suite, short and with fixed seeds: ``test_atheris.py`` (atheris,
  coverage-guided, in subprocesses) and ``test_targets.py`` (hypothesis, in process);
* as long runs, one command per target (libFuzzer options after the module name)::

      .venv/bin/python -m tests.fuzz.fuzz_codec  -max_total_time=600
      .venv/bin/python -m tests.fuzz.fuzz_esp    -max_total_time=600
      .venv/bin/python -m tests.fuzz.fuzz_engine -max_total_time=600

  Each writes its seed corpus (the real messages of a connection) to
  ``build/fuzz/<target>/corpus`` first and keeps what it finds there; a crash is saved
  as ``build/fuzz/<target>/crash-*`` and replays with
  ``python -m tests.fuzz.fuzz_engine build/fuzz/engine/crash-...``.

The hypothesis state machines (``test_engine_machine.py``, ``test_esp_machine.py``) drive
the engine and the ESP input path through sequences of legitimate steps, retransmissions,
duplicates, garbage, mutations, deletes and time, checking after every step that no
exception escaped, only documented outputs came out, and the tables stay consistent and
bounded.
"""
