# The image the pipeline's checks and rollout run in, and docker compose's `test` service:
# gcloud and Java (Google's emulator image, so the tests can start Firestore emulators), uv and make.
# Python 3.12 is not in it: uv fetches the version .python-version names.
FROM gcr.io/google.com/cloudsdktool/google-cloud-cli:528.0.0-emulators
COPY --from=ghcr.io/astral-sh/uv:0.13.0@sha256:cdc6093146eb3ff6a40107b38f008b789e050e77ad87865e381d9917da55a168 /uv /usr/local/bin/uv
RUN apt-get update \
    && apt-get install --yes --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
