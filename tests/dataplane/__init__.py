"""Tests of the userspace ESP data plane (ikegate.dataplane)."""
