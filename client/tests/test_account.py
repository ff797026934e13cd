"""The client's account and session calls against a live server: typed results, typed errors."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from conftest import PASSWORD, Server, register
from sessionward_client import (
    DEFAULT_USER_AGENT,
    AsyncSessionwardClient,
    Conflict,
    Forbidden,
    InvalidCredentials,
    NotFound,
    NotSignedIn,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SessionRevoked,
    SessionwardClient,
    SessionwardError,
    ValidationFailed,
)


def test_register_returns_the_new_user_with_a_normalised_email(server: Server, email: str) -> None:
    with SessionwardClient(server.base_url) as client:
        user = client.register(f"  {email.upper()} ", PASSWORD, name="Ada")
    assert user.email == email
    assert user.name == "Ada"
    assert user.role == "user"
    assert isinstance(user.created_at, datetime)
    assert user.created_at.tzinfo is not None


def test_registering_an_email_twice_raises_conflict(server: Server, email: str) -> None:
    with SessionwardClient(server.base_url) as client:
        client.register(email, PASSWORD)
        with pytest.raises(Conflict) as caught:
            client.register(email, PASSWORD)
    assert caught.value.status == 409


def test_a_weak_password_raises_validation_failed_naming_the_field(server: Server, email: str) -> None:
    with SessionwardClient(server.base_url) as client, pytest.raises(ValidationFailed) as caught:
        client.register(email, "short")
    assert caught.value.status == 400
    assert "password" in [error.field for error in caught.value.errors]


def test_a_wrong_password_raises_invalid_credentials_and_stores_nothing(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        with pytest.raises(InvalidCredentials) as caught:
            client.login(email, "not the password")
        assert caught.value.status == 401
        assert caught.value.message
        assert client.tokens is None


def test_login_stores_the_tokens_and_me_answers_with_the_user(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        result = client.login(email, PASSWORD)
        assert client.signed_in
        assert client.tokens == result.tokens
        assert client.session_id == result.session_id
        assert len(result.session_id) == 64
        assert result.device_info is not None
        assert result.device_info.user_agent == DEFAULT_USER_AGENT
        assert client.me() == result.user
        assert result.user.email == email


def test_protected_calls_without_login_raise_not_signed_in(server: Server) -> None:
    with SessionwardClient(server.base_url) as client, pytest.raises(NotSignedIn):
        client.me()


def test_sessions_lists_this_session_as_current_and_the_others(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as phone, SessionwardClient(server.base_url) as laptop:
        phone.login(email, PASSWORD)
        laptop.login(email, PASSWORD)
        listed = laptop.sessions()
    assert listed.current is not None
    assert listed.current.id == laptop.session_id
    assert listed.current.is_current
    assert [s.id for s in listed.others] == [phone.session_id]
    assert {s.id for s in listed.all} == {phone.session_id, laptop.session_id}


def test_revoke_session_ends_that_session_and_an_unknown_one_raises_not_found(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as phone, SessionwardClient(server.base_url) as laptop:
        phone.login(email, PASSWORD)
        laptop.login(email, PASSWORD)
        assert phone.session_id is not None
        laptop.revoke_session(phone.session_id)
        assert laptop.sessions().others == []
        with pytest.raises(NotFound):
            laptop.revoke_session(phone.session_id)
        with pytest.raises(NotFound):
            laptop.revoke_session("0" * 64)


def test_revoke_other_sessions_returns_how_many_ended(server: Server, email: str) -> None:
    register(server, email)
    others = [SessionwardClient(server.base_url) for _ in range(3)]
    with SessionwardClient(server.base_url) as client:
        for other in others:
            other.login(email, PASSWORD)
            other.close()
        client.login(email, PASSWORD)
        assert client.revoke_other_sessions() == 3
        assert client.revoke_other_sessions() == 0
        client.me()


def test_change_password_with_a_wrong_current_password_raises_forbidden(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        client.login(email, PASSWORD)
        with pytest.raises(Forbidden) as caught:
            client.change_password("not the password", "a brand new passphrase")
        assert caught.value.status == 403
        assert client.signed_in  # a 403 is not a reason to drop the session


def test_change_password_keeps_this_session_and_the_new_password_signs_in(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as client, SessionwardClient(server.base_url) as other:
        other.login(email, PASSWORD)
        client.login(email, PASSWORD)
        client.change_password(PASSWORD, "a brand new passphrase")
        assert client.me().email == email
        assert client.sessions().others == []
        with pytest.raises(InvalidCredentials):
            other.login(email, PASSWORD)
        other.login(email, "a brand new passphrase")


def test_events_list_the_login_newest_first_and_page_with_before(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        with pytest.raises(InvalidCredentials):
            client.login(email, "wrong password")
        client.login(email, PASSWORD)
        events = client.events()
        assert [event.type for event in events[:2]] == ["login_succeeded", "login_failed"]
        assert events[0].session_id == client.session_id
        assert events[0].at >= events[1].at
        older = client.events(limit=1, before=events[0].id)
    assert [event.id for event in older] == [events[1].id]


def test_logout_ends_the_session_on_the_server_and_clears_the_store(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as client:
        client.login(email, PASSWORD)
        tokens = client.tokens
        assert tokens is not None
        client.logout()
        assert client.tokens is None
        client.logout()  # already signed out: nothing to do
    refused = httpx.post(
        f"{server.base_url}/api/v1/auth/refresh",
        json={"refresh_token": tokens.refresh_token, "session_id": tokens.session_id},
        headers={"user-agent": DEFAULT_USER_AGENT},
    )
    assert refused.status_code == 401


def test_logout_all_ends_every_session_of_the_user(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url) as phone, SessionwardClient(server.base_url) as laptop:
        phone.login(email, PASSWORD)
        laptop.login(email, PASSWORD)
        laptop.logout(all=True)
        with pytest.raises(SessionRevoked):
            phone.me()
        assert phone.tokens is None


async def test_the_async_client_does_the_same_calls(server: Server, email: str) -> None:
    async with AsyncSessionwardClient(server.base_url) as client, AsyncSessionwardClient(server.base_url) as other:
        user = await client.register(email, PASSWORD)
        with pytest.raises(InvalidCredentials):
            await client.login(email, "not the password")
        await other.login(email, PASSWORD)
        result = await client.login(email, PASSWORD)
        assert result.user == user
        assert await client.me() == user
        listed = await client.sessions()
        assert listed.current is not None
        assert listed.current.id == client.session_id
        assert [s.id for s in listed.others] == [other.session_id]
        assert other.session_id is not None
        await client.revoke_session(other.session_id)
        with pytest.raises(NotFound):
            await client.revoke_session(other.session_id)
        assert await client.revoke_other_sessions() == 0
        with pytest.raises(Forbidden):
            await client.change_password("not the password", "a brand new passphrase")
        await client.change_password(PASSWORD, "a brand new passphrase")
        assert (await client.events(limit=1))[0].type == "password_changed"
        await client.logout()
        assert client.tokens is None
        with pytest.raises(NotSignedIn):
            await client.me()


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"retry-after": "7"}, RateLimited, 7.0),
        (503, {"retry-after": "2"}, ServiceUnavailable, 2.0),
        (500, {}, ServerError, None),
        (418, {}, SessionwardError, None),
    ],
)
def test_other_answers_map_to_typed_errors_with_retry_after(
    status: int, headers: dict[str, str], expected: type[SessionwardError], retry_after: float | None
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, json={"status": "fail", "message": "Nope"})

    transport = httpx.MockTransport(answer)
    with SessionwardClient("http://sessionward.test", transport=transport) as client, pytest.raises(expected) as caught:
        client.login("someone@example.com", PASSWORD)
    assert type(caught.value) is expected
    assert caught.value.status == status
    assert caught.value.message == "Nope"
    assert getattr(caught.value, "retry_after", None) == retry_after


def test_a_custom_user_agent_is_what_the_server_records(server: Server, email: str) -> None:
    register(server, email)
    with SessionwardClient(server.base_url, user_agent="my-app/2.0") as client:
        result = client.login(email, PASSWORD)
        client.auth.refresh()
        client.me()
    assert result.device_info is not None
    assert result.device_info.user_agent == "my-app/2.0"
