# syntax=docker/dockerfile:1
# Lookalike's serving image: ONNX Runtime + FAISS + FastAPI (+ the Milvus and PostgreSQL clients); no torch, no
# training stack. The exported backbone and the trained head are not built here: mount them (see deploy/ and the
# README's "Docker and Compose" section), as LOOKALIKE_MODELS_DIR and LOOKALIKE_HOME/heads.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install ".[milvus,postgres]"

FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 lookalike \
    && mkdir -p /data /models \
    && chown lookalike:lookalike /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LOOKALIKE_HOME=/data \
    LOOKALIKE_MODELS_DIR=/models \
    LOOKALIKE_HOST=0.0.0.0 \
    LOOKALIKE_PORT=8000
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]
ENTRYPOINT ["lookalike"]
CMD ["serve"]
