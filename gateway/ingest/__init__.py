"""OpenLineage ingestion: typed models, the normaliser into store calls, and the HTTP endpoint."""
