# The image the cloud profile's jobs run in (profiles/cloud: container-image): Python 3.11 with
# envs/requirements.txt, the same pinned set as `make venv`, and dmlbench installed as users
# install it: a wheel built from this checkout (the config schema travels inside it as package
# data), not the source tree.
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
# What the wheel is built from (pyproject.toml, MANIFEST.in): src/dmlbench/config/config.schema.yaml
# is a link to schemas/config.schema.yaml, so schemas/ comes too.
COPY pyproject.toml MANIFEST.in README.md LICENSE CITATION.cff ./
COPY schemas ./schemas
COPY src ./src
# Build the wheel, install it, drop the sources; then, from another folder, the installed package
# must find its schema and run.
RUN pip wheel --no-deps -w /tmp/dist . \
    && pip install --no-deps /tmp/dist/dmlbench-*.whl \
    && rm -rf /tmp/dist build src \
    && cd / \
    && python -c "from dmlbench.config.validation import load_schema, schema_path; load_schema(); print(schema_path())" \
    && dmlbench --version && dmlbench list heads > /dev/null

# Snakemake's Kubernetes jobs run `python -m snakemake` in /workdir (the sources come from storage).
WORKDIR /workdir
