"""Types of ids and paging parameters: bounded, so an absurd number is a 422, not a 500.

Ids are `INTEGER` columns: signed 32-bit on PostgreSQL, so a larger number in a path or body
would otherwise reach the driver and fail there ("integer out of range"). Text that a database
cannot store (NUL bytes: PostgreSQL refuses them; lone surrogates: not encodable as UTF-8) is
refused here too, naming the field.
"""

from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field

MAX_ID = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Rows to skip")]


def storable_text(value: str) -> str:
    """`value` if both databases can store it: no NUL bytes, valid Unicode (no lone surrogates)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(storable_text)]
STREAM_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
StreamIdPath = Annotated[str, Path(pattern=STREAM_ID_PATTERN, description="The stream's id")]
