# A snakepit remote worker image: `snakepit-worker serve` with your adapter.
#
# Build from the repository's top directory:
#     docker build -t snakepit-worker:dev .
# Run (TLS files and token mounted; see deploy/kubernetes/deployment.yaml):
#     docker run -p 50051:50051 -p 8081:8081 snakepit-worker:dev --adapter pkg.Model --tls-cert ... --tls-key ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/opt/adapters

# A fixed numeric non-root user, so that Kubernetes can check runAsNonRoot.
RUN groupadd --system --gid 10001 snakepit \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/snakepit --create-home snakepit

# The worker: the snakepit_bridge package and the `snakepit-worker` command
# (grpcio, protobuf, grpcio-health-checking).
COPY python/ /tmp/snakepit-python/
RUN pip install /tmp/snakepit-python && rm -rf /tmp/snakepit-python

# >>> YOUR ADAPTER: replace the ONE line below with your own package, e.g.
# >>>     RUN pip install my-model==1.2.0          (then --adapter my_model.Model)
# >>>     COPY my_model/ /opt/adapters/my_model/    (a source directory on PYTHONPATH)
# The showcase adapter (snakepit_showcase.adapter.ShowcaseAdapter) stands in for it.
COPY python/snakepit_showcase/ /opt/adapters/snakepit_showcase/

USER 10001:10001
WORKDIR /home/snakepit

# 50051: the gRPC worker (TLS, bearer token). 8081: grpc.health.v1 for probes.
EXPOSE 50051 8081
ENTRYPOINT ["snakepit-worker", "serve"]
# Without arguments the image only prints the flags.
CMD ["--help"]
