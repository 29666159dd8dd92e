# hello-service container image, built offline FROM the local base image (no registry is reached):
#
#   examples/build-hello-image.sh v1 v2      # tags hello-service:v1 and hello-service:v2
#
# The build context holds this file, examples/hello_service.py and wheels/ (fastapi, uvicorn, prometheus_client
# and their dependencies for CPython 3.11, prepared on the host: see the script). The version an instance reports
# comes from its command line (--release, the profile's [target.docker] command), so one image serves
# every version and the script only tags it once per version.
ARG BASE_IMAGE=canary/python:3.11
FROM ${BASE_IMAGE}

COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/hello \
    && /opt/hello/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
       --find-links /tmp/wheels fastapi uvicorn prometheus_client \
    && rm -rf /tmp/wheels
COPY hello_service.py /opt/hello/hello_service.py

ENV PATH=/opt/hello/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="hello-service" \
      org.opencontainers.image.description="canary-harness example service (examples/hello_service.py)"
# Runs as nobody (numeric: the base image's /etc/passwd is minimal); the harness runs it as the invoking user.
USER 65534:65534
# uvicorn stops gracefully on SIGTERM, the signal `docker stop` sends first.
STOPSIGNAL SIGTERM
# Host networking: the harness passes --host 127.0.0.1 --port P --release V (the profile's command).
ENTRYPOINT ["python3", "/opt/hello/hello_service.py"]
CMD ["--host", "127.0.0.1", "--port", "9000", "--release", "dev"]
