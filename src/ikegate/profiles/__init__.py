"""Client profiles: what a Windows, Apple, Android or NetworkManager user needs to connect.

Each kind has its own module with a ``build(profile, ...) -> bytes`` over a
:class:`~ikegate.profiles.common.ConnProfile` (the conn as read by
:func:`~ikegate.profiles.common.describe_conn`); :mod:`ikegate.profiles.suites` picks
the proposals; :mod:`ikegate.profiles.command` is ``ikegate profile KIND``.
"""

from __future__ import annotations

from types import ModuleType

from ikegate.profiles import android, apple, networkmanager, windows
from ikegate.profiles.common import ConnProfile, ProfileError, describe_conn

#: profile kind (the CLI word) -> its module
KINDS: dict[str, ModuleType] = {
    "windows": windows,
    "apple": apple,
    "android": android,
    "networkmanager": networkmanager,
}


def build_profile(kind: str, profile: ConnProfile, *, password: str | None = None,
                  ca_path: str | None = None) -> bytes:
    """The profile of ``kind`` for ``profile``.  ``password`` is stored where the format
    can hold one (not Windows); ``ca_path`` is the CA file's path on a NetworkManager
    client.  Raises :class:`ProfileError`."""
    if kind == "windows":
        if password is not None:
            raise ProfileError("Windows profiles cannot hold a password")
        return windows.build(profile)
    if kind == "apple":
        return apple.build(profile, password=password)
    if kind == "android":
        return android.build(profile, password=password)
    if kind == "networkmanager":
        return networkmanager.build(profile, ca_path=ca_path, password=password)
    raise ProfileError(f"unknown profile kind {kind!r} (one of {', '.join(KINDS)})")


__all__ = ["KINDS", "ConnProfile", "ProfileError", "build_profile", "describe_conn"]
