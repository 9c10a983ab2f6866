# syntax=docker/dockerfile:1
# asset-gateway: GraphQL on :4000, embedded SQLite in /var/lib/asset-gateway unless GATEWAY_DATABASE_URL says otherwise.
#   docker build -t asset-gateway .
#   docker run -p 4000:4000 -v asset-gateway-data:/var/lib/asset-gateway asset-gateway
# tests/test_dockerfile.py lints this file and runs its commands, so keep them in the forms it reads.

# --- builder: a wheel of the project, installed with its pinned dependencies into /opt/venv -------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The build context is cut down by .dockerignore to what the wheel is built from.
COPY . .

RUN python -m venv /opt/venv \
    && python -m pip wheel --no-cache-dir --no-deps -w /wheels . \
    && /opt/venv/bin/python -m pip install --no-cache-dir -c constraints.txt /wheels/*.whl

# --- runtime: the venv only, as a non-root user --------------------------------------------------------------
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_DATA_DIR=/var/lib/asset-gateway \
    GATEWAY_LOG_FORMAT=json

RUN groupadd --system --gid 10001 gateway \
    && useradd --system --no-log-init --uid 10001 --gid gateway \
        --home-dir /var/lib/asset-gateway --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /var/lib/asset-gateway \
    && chown gateway:gateway /var/lib/asset-gateway

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/asset-gateway

EXPOSE 4000

# No curl in the slim image: urlopen raises (exit 1) on a refused connection or any HTTP error status.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4000/healthz', timeout=4)"]

# Migrate (needed for Postgres; a no-op when current), then exec so that the server gets SIGTERM from `docker stop`.
CMD ["sh", "-c", "asset-gateway migrate && exec asset-gateway serve --host 0.0.0.0 --port 4000"]
