"""Everything a request handler needs, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sessionward.clock import Clock
from sessionward.config import Settings
from sessionward.db import Database
from sessionward.outbox.sender import Sender
from sessionward.ratelimit import RateLimits
from sessionward.tokens.jwt import AccessTokens
from sessionward.tokens.keys import Keys
from sessionward.tokens.revocation import RevocationCache
from sessionward.users.passwords import Passwords
from sessionward.vault import Vault

if TYPE_CHECKING:
    from sessionward.tokens.broadcast import RevocationBus
    from sessionward.tokens.stream import RevocationFeed


@dataclass
class Context:
    settings: Settings
    clock: Clock
    db: Database
    access: AccessTokens
    cache: RevocationCache
    passwords: Passwords
    limits: RateLimits
    outbox: Sender
    vault: Vault
    bus: RevocationBus | None = None
    feed: RevocationFeed | None = None  # the revocation stream's, made by its first subscriber

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Context:
        clock = clock or Clock()
        keys = Keys(settings, now=clock.now())
        db = Database(settings.database_url, timeout_seconds=settings.database_timeout.total_seconds())
        ctx = cls(
            settings=settings,
            clock=clock,
            db=db,
            access=AccessTokens(
                keys,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                lifetime=settings.access_token_expires_in,
            ),
            cache=RevocationCache(settings.session_cache_ttl.total_seconds()),
            passwords=Passwords(
                memory_kib=settings.argon2_memory_kib,
                time_cost=settings.argon2_time_cost,
                parallelism=settings.argon2_parallelism,
            ),
            limits=RateLimits(settings),
            outbox=Sender(db, clock),
            vault=Vault(settings),
        )
        from sessionward.mail.delivery import MailDelivery  # it needs the context: imported once that exists
        from sessionward.mail.outgoing import KIND

        ctx.outbox.handlers[KIND] = MailDelivery(ctx)
        return ctx

    def start(self) -> None:
        """Background work of a serving process: the outbox's sender, and the Redis revocation bus when
        configured."""
        self.outbox.start()
        if self.settings.redis_url and self.bus is None:
            from sessionward.tokens.broadcast import RevocationBus

            self.bus = RevocationBus(self.settings.redis_url, self.cache)
            self.bus.start()

    async def close(self) -> None:
        await self.outbox.stop()
        if self.bus is not None:
            await self.bus.close()
        self.passwords.close()
        await self.db.dispose()
