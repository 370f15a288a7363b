# signspot for GPU users.
#   docker build -t signspot .
#   docker run --gpus all --rm -v /data:/data signspot \
#       python main_results_creator_v2.py --lmdb_dir /data/lmdb/test --checkpoint_dir /data/ckpt.pt --save_dir /data/results
# PyPI's torch 2.14.1 wheel for Linux x86_64 is a CUDA build that brings its own CUDA
# libraries, so a slim Python base suffices; the host needs only the NVIDIA driver and
# the NVIDIA container toolkit.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg

WORKDIR /opt/signspot

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Any script of the pipeline runs as `docker run ... signspot python <script> ...`.
CMD ["python", "main.py", "--help"]
