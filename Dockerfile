# CPU image for the soilwatch command line and service.
# Build: docker build -t soilwatch .   Run: docker run --rm -v "$PWD/data:/data" -w /data soilwatch demo
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SOILWATCH_DATA_DIR=/data

WORKDIR /opt/soilwatch
# torch from PyPI is the CUDA build (it runs on CPU too). Pass --build-arg TORCH_INDEX_URL=<a CPU-only
# torch wheel index> to make the image several GB smaller.
ARG TORCH_INDEX_URL=
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --index-url "$TORCH_INDEX_URL" torch==2.14.1 torchvision==0.29.1; \
    else pip install torch==2.14.1 torchvision==0.29.1; fi
COPY pyproject.toml README.md ./
COPY detector detector
COPY models models
COPY service service
COPY training training
COPY soilwatch soilwatch
# kelp-o-matic's wheel holds the aerial MobileNetV3 that training the shipped recipe from scratch starts from
# (MIT, about 130 MB); --no-deps because its own pins (torchvision<0.17) do not fit ours. Detection does not need it.
RUN pip install . && pip install --no-deps kelp-o-matic==0.8.0 && soilwatch --version

RUN useradd --create-home soilwatch && mkdir -p /data && chown soilwatch /data
USER soilwatch
WORKDIR /data
ENTRYPOINT ["soilwatch"]
CMD ["--help"]
