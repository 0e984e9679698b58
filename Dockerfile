# Worker image for docker-compose.yml: hpo with a CUDA build of PyTorch (PyPI's default on x86_64 Linux).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends chromium && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hpo ./hpo
COPY studies ./studies
COPY search_spaces ./search_spaces
RUN pip install --no-cache-dir "torch<=2.14.1" "torchvision<=0.29.1" && pip install --no-cache-dir -e .
ENV HPO_DATA_DIR=/data HPO_ARTIFACTS=/artifacts
ENTRYPOINT ["hpo"]
