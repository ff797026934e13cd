from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from sessionward.schemas import NO_NUL

Opaque = Annotated[StrictStr, Field(min_length=10, max_length=512, pattern=NO_NUL)]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: Opaque
    session_id: Opaque


class Jwks(BaseModel):
    keys: list[dict[str, str]]
