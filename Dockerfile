# Tollgate: `docker build -t tollgate .`, then `docker run -p 5000:5000 -v tollgate:/data tollgate`
# (SQLite and blobs under /data), or see docker-compose.yml for replicas on PostgreSQL and S3.

# ---- build: a wheel of Tollgate and of every dependency (no compiler needed: all ship wheels)
FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels .

# ---- runtime: the wheels installed, no sources, no build tools
FROM python:3.12-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/tollgate-*.whl \
 && groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid tollgate --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin tollgate \
 && mkdir -p /data && chown tollgate:tollgate /data && chmod 0750 /data

# A numeric user, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /data
ENV TOLLGATE_DATA_DIR=/data TOLLGATE_HOST=0.0.0.0 TOLLGATE_PORT=5000
# blobs and the SQLite database by default; with PostgreSQL and S3, only the token signing key
VOLUME ["/data"]
EXPOSE 5000

# /health needs no credentials (unlike /v2/ with auth on) and fails while the database does not
# answer. Over HTTPS when TOLLGATE_TLS_CERT is set (not verified: the certificate names the
# registry's public host, not 127.0.0.1); with tls.client_ca, replace this check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('TOLLGATE_TLS_CERT')); urllib.request.urlopen('%s://127.0.0.1:%s/health' % ('https' if tls else 'http', os.environ.get('TOLLGATE_PORT', '5000')), timeout=4, context=ssl._create_unverified_context() if tls else None)"]

# `docker run IMAGE` serves; `docker run IMAGE migrate`, `... user add NAME` run other commands.
ENTRYPOINT ["tollgate"]
CMD ["serve"]
