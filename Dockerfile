# stocksync daemon: `docker run --env-file ./stocksync.env -v stocksync-data:/data -v ./config:/config:ro -p 127.0.0.1:9108:9108 stocksync`
# The base is pinned by tag and digest: a rebuild gets the same Python and Debian. Bump both
# together (docker buildx imagetools inspect python:3.11.N-slim-bookworm shows the digest).
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin stocksync \
    && mkdir -p /data /config \
    && chown stocksync:stocksync /data

# dependencies at the versions of constraints.txt (tested), with both database drivers
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY sync ./sync
COPY connectors ./connectors
RUN pip install -c constraints.txt '.[postgresql,mysql]' && rm -rf /src

WORKDIR /data
USER stocksync
VOLUME ["/data"]

# the config should use state.url: sqlite:////data/stocksync.db (or a PostgreSQL URL)
# and metrics.host: 0.0.0.0 to publish /metrics.
ENV STOCKSYNC_CONFIG=/config/config.yaml
EXPOSE 9108
# `stocksync healthcheck` GETs /healthz on the config's metrics host and port (a wildcard
# host through loopback), so the check follows metrics.port. Docker reserves exit code 2:
# a config it cannot read (or metrics: null) counts as unhealthy (1).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "stocksync healthcheck --timeout 5 || exit 1"]

STOPSIGNAL SIGTERM
CMD ["stocksync", "run", "-c", "/config/config.yaml"]
