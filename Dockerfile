# Tollway's container image (docs/deployment.md):
#   podman build --format docker -t tollway .     # or: docker build -t tollway .
#   podman run -p 8080:8080 -p 8081:8081 -e TOLLWAY_ADMIN_TOKEN=… tollway
# (--format docker: podman's default OCI format has no HEALTHCHECK and drops it.)
# The config is /etc/tollway/tollway.yaml (mount your own over it); local files (the
# SQLite database, the usage journal) go to the /var/lib/tollway volume.

# --- build: a wheel of the project, and its dependencies' wheels --------------------
FROM docker.io/library/python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- run: the wheels installed, nothing of the build -----------------------------------
FROM docker.io/library/python:3.11-slim
RUN groupadd --system --gid 10001 tollway \
 && useradd --system --uid 10001 --gid tollway --home-dir /var/lib/tollway --shell /usr/sbin/nologin tollway \
 && install -d -o tollway -g tollway -m 0750 /var/lib/tollway \
 && install -d -m 0755 /etc/tollway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels tollway && rm -rf /wheels
COPY deploy/container.yaml /etc/tollway/tollway.yaml
# TOLLWAY_DATA_FOLDER is read by the shipped configs (deploy/container.yaml,
# deploy/tollway.yaml), not by Tollway itself; TOLLWAY_HEALTHCHECK_URL only by the
# HEALTHCHECK below: change it with admin.port.
ENV TOLLWAY_CONFIG=/etc/tollway/tollway.yaml \
    TOLLWAY_DATA_FOLDER=/var/lib/tollway \
    TOLLWAY_HEALTHCHECK_URL=http://127.0.0.1:8081/healthz \
    PYTHONUNBUFFERED=1
# A numeric user: Kubernetes' runAsNonRoot can only tell a number is not root.
USER 10001:10001
WORKDIR /var/lib/tollway
VOLUME ["/var/lib/tollway"]
EXPOSE 8080 8081
# Liveness from inside the container (the slim image has no curl): the admin port's
# /healthz, which needs no token. urlopen raises on a refused connection or a non-2xx.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['TOLLWAY_HEALTHCHECK_URL'], timeout=2)"]
# SIGTERM drains in-flight calls and stores the last records (server.shutdown_timeout_s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["tollway"]
CMD ["serve"]
