# One image for every statecast process: `statecast serve` (api), `statecast worker`, and the
# one-off `statecast migrate`. docker-compose.yml picks the command; the default is the API.
#
#   docker build -t statecast .                                             # CPU TensorFlow
#   docker build -t statecast-gpu --build-arg TENSORFLOW_PACKAGE="tensorflow[and-cuda]" .
#
# The GPU build swaps tensorflow-cpu for `tensorflow` with its CUDA wheels: the slim base has no
# CUDA libraries of its own, so plain `tensorflow` would import and silently run on the CPU.
FROM python:3.11-slim

ARG TENSORFLOW_PACKAGE=tensorflow-cpu
ARG APP_UID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF_ENABLE_ONEDNN_OPTS=0

RUN groupadd --system --gid "${APP_UID}" statecast \
    && useradd --system --uid "${APP_UID}" --gid statecast --no-create-home \
        --home-dir /srv/statecast --shell /usr/sbin/nologin statecast

WORKDIR /srv/statecast

# Dependencies first, from pyproject.toml alone, so editing the code does not reinstall
# TensorFlow. The tensorflow-cpu requirement keeps its version bound but takes the package
# chosen by TENSORFLOW_PACKAGE. constraints.txt pins every package (dependencies of
# dependencies too) to the versions last tested; `make constraints` refreshes it.
COPY pyproject.toml constraints.txt ./
RUN python -c "import os, tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
tf = os.environ['TENSORFLOW_PACKAGE']; \
print('\n'.join(tf + d[len('tensorflow-cpu'):] if d.startswith('tensorflow-cpu') else d for d in deps))" \
        > /tmp/requirements.txt \
    && cat /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt -c constraints.txt \
    && rm /tmp/requirements.txt

# The whole source tree stays in place and the package is installed editable: app/db/migrations.py
# finds migrations/ beside the app package, which a regular install into site-packages would lose.
# --no-deps: the dependencies (with the chosen TensorFlow) are already there.
COPY . .
RUN pip install --no-deps -e . \
    && mkdir -p /srv/statecast/models /srv/statecast/data \
    && chown statecast:statecast /srv/statecast/models /srv/statecast/data

ENV STATECAST_HOST=0.0.0.0 \
    STATECAST_PORT=8000 \
    STATECAST_MODEL_DIR=/srv/statecast/models \
    STATECAST_KEY_FILE=/srv/statecast/data/api_key

# Trained model files live outside the image; api and worker share one volume here. Declared
# after the chown so a fresh named volume starts out owned by the statecast user.
VOLUME ["/srv/statecast/models"]

USER statecast
EXPOSE 8000

# Liveness only (/healthz never touches the database); readiness is /readyz. urllib, not curl:
# the slim image has no curl. The worker overrides this in docker-compose.yml (it serves no HTTP).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('STATECAST_PORT', '8000') + '/healthz', timeout=4)"]

CMD ["statecast", "serve"]
