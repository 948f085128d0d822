"""In-memory tests of the IKE responder engine, driven by a test initiator (initiator.py)."""
