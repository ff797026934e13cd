from __future__ import annotations

import httpx

from tests.conftest import API, Users, refresh


async def test_login_refresh_me_round_trip(client: httpx.AsyncClient, users: Users) -> None:
    login = await users.signed_in()
    me = await client.get(f"{API}/me", headers=login.auth)
    assert me.status_code == 200
    assert me.json()["data"]["user"]["email"] == login.email
    rotated = await refresh(client, login.refresh, login.session_id)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["data"]["refresh"]["token"] != login.refresh
