"""The GraphQL face of the gateway: a Strawberry schema that is also an Apollo Federation v2 subgraph."""

from schema.build import build_schema

__all__ = ["build_schema"]
