"""Top-level pytest configuration shared by every test folder (keep it small).

The end-to-end tests in ``interop/`` bring their own fixtures and skip themselves
when the machine cannot run them; this file only reports, in pytest's header,
whether they can run here, so a skipped run is noticed at a glance.
"""

from __future__ import annotations

import os
import shutil


def pytest_report_header(config):
    missing = [tool for tool in ("ip", "swanctl", "dumpcap") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        return "end-to-end (interop) tests: skipped, not running as root"
    if missing:
        return f"end-to-end (interop) tests: skipped, missing {', '.join(missing)}"
    return "end-to-end (interop) tests: enabled (root, strongSwan, tshark)"
