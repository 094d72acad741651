"""Types of ids and paging parameters: bounded, so an absurd number is a 422, not a 500.

Both databases store ids as signed 64-bit integers; a larger number in a path or body would
otherwise reach the driver and fail there.
"""

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

MAX_ID = 2**63 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Rows to skip")]
