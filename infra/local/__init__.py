"""The local stand-ins: embedded PostgreSQL, moto's server, and the totesys stand-in."""
