# syntax=docker/dockerfile:1.7
# The image every Cloud Run revision runs. Two stages: uv builds the locked runtime environment, and a slim
# runtime stage gets only that environment and the app: no compilers, no uv, no tests, no dev tools.
#
# Base images are pinned by version tag and by digest. To refresh one, pick the new tag and run
#   docker buildx imagetools inspect python:3.12.12-slim-bookworm --format '{{json .Manifest.Digest}}'
# (likewise for ghcr.io/astral-sh/uv:<version>, copied into the builder), then update the pins. The Python minor
# version must stay the one in .python-version (a test checks it).
FROM python:3.12.12-slim-bookworm@sha256:593bd06efe90efa80dc4eee3948be7c0fde4134606dd40d8dd8dbcade98e669c AS python

FROM python AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13.0@sha256:cdc6093146eb3ff6a40107b38f008b789e050e77ad87865e381d9917da55a168 /uv /usr/local/bin/uv
# Bytecode compiled now, not at every cold start; copied files, because the cache mount is not in the image.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies alone first: this layer is reused until uv.lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=.python-version,target=.python-version \
    uv sync --locked --no-dev --no-install-project
COPY app ./app
RUN python -m compileall -q app

FROM python AS runtime
ARG SOURCE=unknown
ARG REVISION=unknown
ARG VERSION=unknown
LABEL org.opencontainers.image.title="birthday-api" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=builder /app /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080
USER 10001:10001
EXPOSE 8080
# For docker and compose; Cloud Run ignores it and uses the probes in deploy/revision.yaml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/health/live\", timeout=2)"]
# Exec form: SIGTERM reaches the Python process directly. `python -m app` runs uvicorn with uvloop and
# httptools, one worker, a cap on request headers and a graceful shutdown inside Cloud Run's 10 s (app/__main__.py).
ENTRYPOINT ["python", "-m", "app"]
