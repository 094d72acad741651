"""Storage: typed tables, the engine and session, and the queries."""
