# Sentinel's image: every role and the node agent (one image, the command picks). Built in two stages so that the
# runtime holds production dependencies only, and runs as an unprivileged user.
FROM node:20-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    SENTINEL_DATA_DIR=/var/lib/sentinel
WORKDIR /app
RUN groupadd --system --gid 10001 sentinel \
 && useradd --system --uid 10001 --gid sentinel --home-dir /var/lib/sentinel --create-home sentinel
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY adapters ./adapters
COPY agent ./agent
COPY app ./app
COPY commands ./commands
COPY domain ./domain
COPY projections ./projections
COPY proto ./proto
COPY reactors ./reactors
COPY telemetry ./telemetry
# The node agent runs as one bundled ES module on plain node (dependencies stay in node_modules): it starts without
# compiling TypeScript, and its resident set on every GPU node stays small.
RUN npm run build:agent
USER 10001:10001
EXPOSE 8080 50051 9400
# /healthz answers while the process runs; Node's fetch keeps curl out of the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--import", "tsx"]
CMD ["--import", "./app/tracing-preload.ts", "app/main.ts"]
