# stocksync daemon: `docker run -v stocksync-data:/data -v ./config:/config:ro -p 9108:9108 stocksync`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin stocksync \
    && mkdir -p /data /config \
    && chown stocksync:stocksync /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sync ./sync
COPY connectors ./connectors
RUN pip install . && rm -rf /src

WORKDIR /data
USER stocksync
VOLUME ["/data"]

# the config should use state.url: sqlite:////data/stocksync.db (or a PostgreSQL URL)
# and metrics.host: 0.0.0.0 to publish /metrics; the health check runs inside the container.
ENV STOCKSYNC_CONFIG=/config/config.yaml
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]

STOPSIGNAL SIGTERM
CMD ["stocksync", "run", "-c", "/config/config.yaml"]
