from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

Opaque = Annotated[StrictStr, Field(min_length=10, max_length=512)]


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: Opaque
    session_id: Opaque


class Jwks(BaseModel):
    keys: list[dict[str, str]]
