"""`Prefer: return=minimal` (RFC 7240; the PostgREST and Microsoft REST convention): the client
asks for no representation in a write's answer, and the server says it obliged with
`Preference-Applied`."""

PREFER_HEADER_DESCRIPTION = (
    "`return=minimal`: answer `204 No Content`, without the body, once everything sent was "
    "applied (the answer then carries `Preference-Applied: return=minimal`).")
MINIMAL = "return=minimal"
# The answer's header saying the preference was honoured.
APPLIED = {"Preference-Applied": MINIMAL}


def wants_minimal(prefer: str | None) -> bool:
    """Whether a `Prefer` header asks for `return=minimal`: comma-separated preferences, each
    `name[=value]` with optional `;` parameters, names case-insensitive, values optionally
    quoted."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "return" and value.strip().strip('"').lower() == "minimal":
            return True
    return False
