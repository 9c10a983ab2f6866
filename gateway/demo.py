"""A small, realistic graph so a newcomer sees something at once: sources, staging, marts, dashboards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.assets import AssetSpec, upsert_asset
from gateway.store.executions import DatasetTouch, ExecutionRecord, ParentRef, record_execution

SHOP = "postgres://shop-db:5432"
LAKE = "s3://acme-raw"
WAREHOUSE = "snowflake://acme.eu-west-1"
BI = "superset://bi.acme.internal"

ASSETS = [
    AssetSpec(
        f"{SHOP}/shop.public.orders",
        type="table",
        description="Orders placed in the web shop.",
        owners=["team:checkout"],
        tags=["source", "pii:none"],
    ),
    AssetSpec(
        f"{SHOP}/shop.public.customers",
        type="table",
        description="Customer accounts.",
        owners=["team:checkout"],
        tags=["source", "pii"],
    ),
    AssetSpec(
        f"{LAKE}/events/clickstream",
        type="file",
        description="Raw clickstream, hourly Parquet drops.",
        owners=["team:growth"],
        tags=["source"],
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.staging.stg_orders",
        type="table",
        owners=["team:data-platform"],
        tags=["staging", "dbt"],
        description="Orders, cleaned and typed.",
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.staging.stg_customers",
        type="table",
        owners=["team:data-platform"],
        tags=["staging", "dbt"],
        description="Customers, deduplicated, PII hashed.",
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.staging.stg_sessions",
        type="table",
        owners=["team:growth"],
        tags=["staging", "spark"],
        description="Web sessions built from the clickstream.",
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.marts.fct_orders",
        type="table",
        owners=["team:finance-analytics"],
        tags=["mart", "dbt", "tier:1"],
        description="One row per order with revenue and margin.",
        metadata={"sla": "daily by 06:00", "rows": 1843211},
        fields=[
            {"name": "order_id", "type": "bigint"},
            {"name": "customer_id", "type": "bigint"},
            {"name": "revenue_eur", "type": "numeric(12,2)"},
            {"name": "ordered_at", "type": "timestamp"},
        ],
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.marts.dim_customers",
        type="table",
        owners=["team:finance-analytics"],
        tags=["mart", "dbt"],
        description="Customer dimension.",
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.marts.revenue_daily",
        type="table",
        owners=["team:finance-analytics"],
        tags=["mart", "dbt", "tier:1"],
        description="Revenue per day and channel.",
    ),
    AssetSpec(
        f"{WAREHOUSE}/analytics.marts.conversion_funnel",
        type="table",
        owners=["team:growth"],
        tags=["mart"],
        description="Sessions to orders, per day.",
    ),
    AssetSpec(
        f"{BI}/dashboard/revenue-overview",
        type="dashboard",
        display_name="Revenue overview",
        owners=["team:finance-analytics"],
        tags=["dashboard", "tier:1"],
    ),
    AssetSpec(
        f"{BI}/dashboard/growth-funnel",
        type="dashboard",
        display_name="Growth funnel",
        owners=["team:growth"],
        tags=["dashboard"],
    ),
]


@dataclass(frozen=True)
class Step:
    namespace: str
    job: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    state: str = "COMPLETE"
    error: str | None = None


STEPS = [
    Step(
        "airflow://prod",
        "shop_extract.load_orders",
        (f"{SHOP}/shop.public.orders",),
        (f"{WAREHOUSE}/analytics.staging.stg_orders",),
    ),
    Step(
        "airflow://prod",
        "shop_extract.load_customers",
        (f"{SHOP}/shop.public.customers",),
        (f"{WAREHOUSE}/analytics.staging.stg_customers",),
    ),
    Step(
        "spark://emr-prod",
        "sessionize_clickstream",
        (f"{LAKE}/events/clickstream",),
        (f"{WAREHOUSE}/analytics.staging.stg_sessions",),
    ),
    Step(
        "dbt://acme_analytics",
        "model.acme.fct_orders",
        (f"{WAREHOUSE}/analytics.staging.stg_orders", f"{WAREHOUSE}/analytics.staging.stg_customers"),
        (f"{WAREHOUSE}/analytics.marts.fct_orders",),
    ),
    Step(
        "dbt://acme_analytics",
        "model.acme.dim_customers",
        (f"{WAREHOUSE}/analytics.staging.stg_customers",),
        (f"{WAREHOUSE}/analytics.marts.dim_customers",),
    ),
    Step(
        "dbt://acme_analytics",
        "model.acme.revenue_daily",
        (f"{WAREHOUSE}/analytics.marts.fct_orders", f"{WAREHOUSE}/analytics.marts.dim_customers"),
        (f"{WAREHOUSE}/analytics.marts.revenue_daily",),
    ),
    Step(
        "dbt://acme_analytics",
        "model.acme.conversion_funnel",
        (f"{WAREHOUSE}/analytics.staging.stg_sessions", f"{WAREHOUSE}/analytics.marts.fct_orders"),
        (f"{WAREHOUSE}/analytics.marts.conversion_funnel",),
        state="FAIL",
        error="Database Error: division by zero in model conversion_funnel (models/marts/conversion_funnel.sql)",
    ),
    Step(
        "superset://bi.acme.internal",
        "refresh.revenue-overview",
        (f"{WAREHOUSE}/analytics.marts.revenue_daily",),
        (f"{BI}/dashboard/revenue-overview",),
    ),
    Step(
        "superset://bi.acme.internal",
        "refresh.growth-funnel",
        (f"{WAREHOUSE}/analytics.marts.conversion_funnel",),
        (f"{BI}/dashboard/growth-funnel",),
    ),
]


async def load_demo(session: AsyncSession, now: datetime, days: int = 3) -> int:
    """Declare the demo assets and record `days` daily runs of every step; returns the runs recorded."""
    for spec in ASSETS:
        await upsert_asset(session, spec, now)
    recorded = 0
    for day in range(days, 0, -1):
        # Each nightly run ended about an hour before "now" on its day, so no time lies in the future.
        dag_start = (now - timedelta(days=day - 1, hours=2)).replace(second=0, microsecond=0)
        dag = ParentRef(str(uuid.uuid4()), "airflow://prod", "nightly_warehouse")
        await record_execution(
            session, ExecutionRecord(dag.job_namespace, dag.job_name, dag.run_id, "START", dag_start), now
        )
        for position, step in enumerate(STEPS):
            started = dag_start + timedelta(minutes=7 * position)
            ended = started + timedelta(minutes=5)
            run_id = str(uuid.uuid4())
            inputs = tuple(DatasetTouch(key) for key in step.inputs)
            is_last_day = day == 1
            state = step.state if is_last_day else "COMPLETE"
            facets = {"outputStatistics": {"rowCount": 1000 * (position + 1) + day}}
            outputs = tuple(DatasetTouch(key, facets) for key in step.outputs)
            await record_execution(
                session,
                ExecutionRecord(
                    step.namespace, step.job, run_id, "START", started, inputs=inputs, outputs=outputs, parent=dag
                ),
                now,
            )
            await record_execution(
                session,
                ExecutionRecord(
                    step.namespace,
                    step.job,
                    run_id,
                    state,
                    ended,
                    inputs=inputs,
                    outputs=outputs,
                    parent=dag,
                    error_message=step.error if state == "FAIL" else None,
                ),
                now,
            )
            recorded += 1
        dag_end = dag_start + timedelta(minutes=7 * len(STEPS))
        dag_state = "FAIL" if day == 1 and any(step.state == "FAIL" for step in STEPS) else "COMPLETE"
        await record_execution(
            session, ExecutionRecord(dag.job_namespace, dag.job_name, dag.run_id, dag_state, dag_end), now
        )
        recorded += 1
    return recorded
