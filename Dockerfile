# LADIS image: the dashboard by default, the monitoring job with another command.
#
#   docker build -t ladis .
#   docker run -p 8501:8501 -v $PWD/secrets.toml:/run/secrets/ladis.toml:ro \
#     -e LADIS_SECRETS_FILE=/run/secrets/ladis.toml -e LADIS_S3_URI=s3://my-bucket/ladis/ -e AWS_... ladis
#   (without an [auth] section in the secrets the dashboard listens on 127.0.0.1 inside the
#    container only; -e LADIS_ALLOW_ANONYMOUS=1 opens it unauthenticated, with a banner)
#   docker run -e ... ladis monitor --reference s3://… --inference s3://… --output s3://…
#   (SageMaker Processing: ContainerEntrypoint ["ladis-processing"]; it reads
#    /opt/ml/config/processingjobconfig.json and the environment)
#
# The install step is scripts/install.sh, the same script `make demo` and `make test` run,
# so what CI tests is what this image builds.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LADIS_VENV=/opt/ladis/.venv \
    PATH=/opt/ladis/.venv/bin:$PATH \
    SMDEBUG_TRAINING_END_DELAY_REFRESH=0

WORKDIR /opt/ladis
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*

COPY requirements.txt requirements-test.txt pyproject.toml README.md ./
COPY scripts/ scripts/
COPY ladis_core/ ladis_core/
COPY app/ app/
COPY pages/ pages/
COPY assets/ assets/
RUN scripts/install.sh

COPY docker/entrypoint.sh /usr/local/bin/ladis-entrypoint
RUN ln -s /usr/local/bin/ladis-entrypoint /usr/local/bin/ladis-processing

# Run as an unprivileged user: the code stays root-owned (read-only to the app); the trial
# cache and Streamlit's home are the only places it writes.
RUN useradd --system --uid 10001 --create-home --home-dir /home/ladis ladis \
    && mkdir -p /var/cache/ladis && chown ladis:ladis /var/cache/ladis
ENV LADIS_CACHE_DIR=/var/cache/ladis HOME=/home/ladis
USER 10001

EXPOSE 8501
ENTRYPOINT ["ladis-entrypoint"]
CMD ["dashboard"]
