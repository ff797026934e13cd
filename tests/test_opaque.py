"""Opaque tokens and the sealed successor, as units."""

from __future__ import annotations

import re

from sessionward.tokens.opaque import hash_token, new_refresh_token, new_session_id, seal, unseal


def test_refresh_tokens_are_long_random_and_url_safe() -> None:
    tokens = {new_refresh_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{64}", token) for token in tokens)


def test_session_ids_are_64_hex_characters() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", new_session_id())


def test_only_the_parent_token_opens_the_sealed_successor() -> None:
    parent, successor = new_refresh_token(), new_refresh_token()
    sealed = seal(parent, successor)
    assert successor.encode() not in sealed
    assert unseal(parent, sealed) == successor
    assert unseal(new_refresh_token(), sealed) is None
    assert unseal(hash_token(parent), sealed) is None, "the stored hash is not the key"


def test_a_tampered_or_missing_seal_opens_to_nothing() -> None:
    parent = new_refresh_token()
    sealed = bytearray(seal(parent, new_refresh_token()))
    sealed[-1] ^= 1
    assert unseal(parent, bytes(sealed)) is None
    assert unseal(parent, b"short") is None
    assert unseal(parent, None) is None
