"""Reading certificates and private keys from files, as strongSwan's pem/x509 plugins do.

Only the first PEM object of a certificate file is read (strongSwan's pem_builder stops
at the first END line), so a "fullchain.pem" contributes only its leaf.  DER is accepted
too.  Errors never carry key material or passphrases.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


class PkiError(Exception):
    """A certificate or key could not be loaded or used."""


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{what} file '{path}' not found") from None
    except OSError as exc:
        raise PkiError(f"{what} file '{path}' unreadable: {exc.strerror}") from None


def _first_pem_block(data: bytes) -> bytes | None:
    start = data.find(b"-----BEGIN ")
    if start < 0:
        return None
    end = data.find(b"-----END ", start)
    if end < 0:
        return None
    stop = data.find(b"-----", end + 9)
    if stop < 0:
        return None
    return data[start : stop + 5] + b"\n"


def load_certificate(path: str | Path) -> x509.Certificate:
    """The (first) X.509 certificate in a PEM or DER file."""
    data = _read(path, "certificate")
    block = _first_pem_block(data)
    try:
        if block is not None:
            return x509.load_pem_x509_certificate(block)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise PkiError(f"certificate file '{path}' holds no valid X.509 certificate") from None


def load_private_key(path: str | Path, passphrase: bytes | None = None):
    """An RSA or ECDSA (or other) private key from a PEM or DER file (PKCS#1, SEC1, PKCS#8)."""
    data = _read(path, "private key")
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key)
    if b"-----BEGIN" not in data:
        loaders = loaders[::-1]
    failure = "holds no private key we can read"
    for loader in loaders:
        try:
            return loader(data, password=passphrase)
        except TypeError:
            failure = "is encrypted and needs a (correct) passphrase" if passphrase is None else "passphrase is wrong"
        except ValueError as exc:
            if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
                failure = "passphrase is wrong"
        except Exception:  # unsupported key types and the like
            pass
    raise PkiError(f"private key file '{path}' {failure}")
