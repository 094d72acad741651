"""The HTTP API: routes, their dependencies and schemas."""
