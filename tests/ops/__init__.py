"""Operations: /metrics, request ids and logs, and what the gateway does while its database is away."""
