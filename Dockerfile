# The image the cloud profile's jobs run in (profiles/cloud: container-image): Python 3.11 with
# envs/requirements.txt, the same pinned set as `make venv`, and dmlbench from this checkout.
#   docker build -t <registry>/dmlbench:<tag> . && docker push <registry>/dmlbench:<tag>
# Rebuild it whenever src/ changes: the jobs run the rules shipped from your checkout but the
# dmlbench installed here. torch's CUDA libraries come as pip packages (nvidia-*); the node's
# NVIDIA driver is mounted by the cluster's GPU device plugin.
FROM python:3.11.7-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

WORKDIR /opt/dmlbench
# The requirements first, in a layer of their own: a change of src/ does not reinstall torch.
COPY envs/requirements.txt envs/requirements.txt
RUN pip install -r envs/requirements.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && python -m dmlbench --help > /dev/null

# Snakemake's Kubernetes jobs run `python -m snakemake` in /workdir (the sources come from storage).
WORKDIR /workdir
