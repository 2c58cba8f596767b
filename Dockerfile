# syntax=docker/dockerfile:1
# One image for every service; the command chooses which one runs:
#   docker run --rm smartcity python -m services.ingest      (8101)
#   docker run --rm smartcity python -m services.rewards     (8102, Faust worker + /metrics)
#   docker run --rm smartcity python -m services.ledger      (8103)
#   docker run --rm smartcity python -m services.identity    (8104)
#   docker run --rm smartcity python -m services.directory   (8105)
#   docker run --rm smartcity python -m services.portal      (8106)
#   docker run --rm smartcity smartcity topics create        (one-shot topic bootstrap)
# The default command prints the CLI's help.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
# The pinned dependencies first, in their own layer: they change far less often than the code. Only
# [project].dependencies: no extra, so neither the embedded broker nor PostgreSQL (the `embedded` extra, for
# development); the image is pointed at Kafka and PostgreSQL by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md ./
COPY services ./services
COPY smartcity_sdk ./smartcity_sdk
COPY schemas ./schemas
# Editable install: `services` stays at /app/services next to /app/schemas, which is where
# services/common/schemas.py looks for the JSON Schemas (repo root = parents[2] of that file).
# It also installs the `smartcity` command. Byte-compiled now because the root filesystem is read-only
# at run time on Kubernetes.
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q /app/services /app/smartcity_sdk

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="smartcity" \
      org.opencontainers.image.description="Smart-city platform services (ingest, rewards, ledger, identity, directory)"
RUN groupadd --system --gid 10001 smartcity \
    && useradd --system --uid 10001 --gid smartcity --home-dir /var/lib/smartcity --shell /usr/sbin/nologin smartcity \
    && install -d -o smartcity -g smartcity -m 0750 /var/lib/smartcity
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BIND_HOST=0.0.0.0 \
    LOG_FORMAT=json \
    LOG_LEVEL=INFO \
    SMARTCITY_DATA_DIR=/var/lib/smartcity
# The working directory is the (writable) data dir, so anything a library keeps relative to the
# current directory lands on the data volume rather than on the read-only root filesystem.
WORKDIR /var/lib/smartcity
USER 10001:10001
EXPOSE 8101 8102 8103 8104 8105 8106
CMD ["smartcity", "--help"]
