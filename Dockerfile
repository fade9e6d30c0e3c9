# gw: Graphile Worker for Python. Build: docker build -t gw .
# Your tasks are not in this image: add them in an image FROM this one (COPY tasks/ ./tasks/)
# or mount them at /app/tasks. See docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Optional extras, comma separated, e.g. --build-arg GW_EXTRAS=embedded
ARG GW_EXTRAS=""

WORKDIR /tmp/gw-src
COPY pyproject.toml README.md ./
COPY graphile_worker_cli ./graphile_worker_cli
RUN pip install ".${GW_EXTRAS:+[$GW_EXTRAS]}" \
    && cd / \
    && rm -rf /tmp/gw-src

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/gw \
        --shell /usr/sbin/nologin gw \
    && install -d -o gw -g gw /app

WORKDIR /app
USER gw

# gw stops on SIGTERM: running jobs get shutdown_grace_period (30s) to finish, so give
# `docker stop -t` / stop_grace_period / terminationGracePeriodSeconds more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gw"]
CMD ["run"]
