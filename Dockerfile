# zoningsync in a container: the package and its command, run as an unprivileged user.
# docker-compose.yml runs `zoningsync migrate`, then `zoningsync run`, against PostGIS.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    ZONINGSYNC_SOURCES=/etc/zoningsync/sources \
    ZONINGSYNC_STATE_DIR=/var/lib/zoningsync

WORKDIR /src
COPY pyproject.toml README.md ./
COPY zoningsync ./zoningsync
COPY migrations ./migrations
RUN pip install . \
    && useradd --system --home-dir /var/lib/zoningsync --create-home --shell /usr/sbin/nologin zoningsync \
    && mkdir -p /etc/zoningsync/sources

USER zoningsync
WORKDIR /var/lib/zoningsync
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["zoningsync"]
CMD ["run"]
