# leadgraph: a multi-stage build. The builder compiles with the locked dependencies and the
# deployment profile; the runtime image is Debian slim with the binary only, run as a
# non-root user, and reports healthy once /readyz answers (the database is reachable).
#
#   docker build -t leadgraph .
#   docker run -p 8000:8000 -v leadgraph-data:/data leadgraph      # SQLite in /data
#   docker compose -f deploy/compose.yaml up                          # 2 replicas, PostgreSQL, Redis
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY entity entity
COPY migration migration
RUN mkdir -p src bench && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > bench/sql_baseline.rs \
    && cargo build --profile dist --locked --bin leadgraph \
    && rm -rf src
COPY build.rs ./
COPY assets assets
COPY src src
COPY schema.graphql ./
RUN touch src/main.rs src/lib.rs && cargo build --profile dist --locked --bin leadgraph

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home leadgraph
COPY --from=build /src/target/dist/leadgraph /usr/local/bin/leadgraph
USER leadgraph
WORKDIR /data
ENV LEADGRAPH_BIND=0.0.0.0:8000 \
    LEADGRAPH_DATABASE_URL=sqlite:///data/leadgraph.db \
    LEADGRAPH_LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
ENTRYPOINT ["leadgraph"]
CMD ["serve"]
