"""The crypto layer: everything with keys, and nothing else.

* :mod:`~ikegate.crypto.transforms` - PRF, integrity and encryption algorithms by IKEv2 ID
* :mod:`~ikegate.crypto.dh` - key exchange methods (MODP, ECP, Curve25519/448)
* :mod:`~ikegate.crypto.keys` - prf+, SKEYSEED, IKE and CHILD SA keys
* :mod:`~ikegate.crypto.sk` - Encrypted payload (SK/SKF) protection
* :mod:`~ikegate.crypto.md4`, :mod:`~ikegate.crypto.mschap` - MS-CHAPv2 primitives
* :mod:`~ikegate.crypto.errors` - the exceptions of all of the above
"""
