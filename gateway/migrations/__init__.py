"""The Alembic migrations of the gateway's schema (versions/), for both dialects."""

# The newest migration's revision: what a serving gateway expects the database to be at (/readyz), without loading
# Alembic to read the scripts. A new migration moves it (tests/store/test_migrations.py checks it against them).
HEAD_REVISION = "0012"
