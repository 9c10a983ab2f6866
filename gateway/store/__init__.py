"""All SQL lives here. Functions take a session and return rows; callers own the transaction."""
