"""The browser dashboard: static files served by the API itself, no build step."""
