"""The app database: one SQLAlchemy Core schema, SQLite or PostgreSQL, Alembic migrations."""
