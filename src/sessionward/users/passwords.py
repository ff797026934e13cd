"""argon2id, off the event loop and bounded, with a dummy verify so unknown emails take as long.

Imported hashes of other formats (``hashes.py``) are verified in the same pool and always need a rehash."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sessionward.users.hashes import verify_foreign

_NICE = 19
_ARGON2 = "$argon2"


def _yield_cpu() -> None:
    """A hashing thread (and the threads argon2 starts from it) gives way to the event loop: with the CPU
    taken, logins slow down instead of refreshes and authenticated requests (Linux: nice is per thread)."""
    with suppress(OSError):  # not permitted, or not Linux: hashing simply runs at the process's priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)


class Passwords:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, workers: int = 2) -> None:
        self._hasher = PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
        # Each hash takes ``memory_kib`` of memory and most of a core: a small pool keeps a login storm
        # from starving the event loop (refreshes) or the memory.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2", initializer=_yield_cpu)
        self._dummy = self._hasher.hash("sessionward dummy password for unknown accounts")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """``None`` (no such user) and ``""`` (an account without a password) verify against a dummy hash and fail,
        in about the same time as a real one."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify, password_hash or self._dummy, password, bool(password_hash)
        )

    def needs_rehash(self, password_hash: str) -> bool:
        """True for an imported hash of another format, and for argon2 with other parameters (or argon2i)."""
        return not password_hash.startswith(_ARGON2) or self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str, real: bool) -> bool:
        if not password_hash.startswith(_ARGON2):
            return verify_foreign(password_hash, password) and real
        try:
            self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return real

    def close(self) -> None:
        self._pool.shutdown(wait=False)
