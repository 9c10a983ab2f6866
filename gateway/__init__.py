"""asset-gateway: assets, executions and lineage from what pipelines actually do."""

__version__ = "0.1.0"
