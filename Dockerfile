# miCDR API and worker image (one image; docker-compose.yml runs it as `api` and `worker`).
#   docker build -t micdr .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the distribution is built from; see .dockerignore. The wheel carries search-params/
# under /usr/local/share/micdr/search-params (pyproject's data-files), where indexing looks for it.
COPY pyproject.toml README.md ./
COPY search-params ./search-params
COPY app ./app
COPY indexing ./indexing
COPY workers ./workers
RUN pip install . \
    && test -d /usr/local/share/micdr/search-params \
    && cd / && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/micdr --create-home micdr

USER micdr
WORKDIR /var/lib/micdr
EXPOSE 8080
# Without a reverse proxy doing authentication in front, keep the port private (see compose file).
CMD ["micdr", "serve", "--host", "0.0.0.0", "--port", "8080", "--insecure"]
