"""sessionward: short-lived access tokens, rotating refresh tokens and per-device sessions."""

__version__ = "0.1.0"
