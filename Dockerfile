# flocknode-workers container: `docker build -t flocknode-workers .`; runs `flock-workers start` as user node.
# Kubernetes manifests: deploy/k8s/ (checked against this file by `npm test`).
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY test/fakes ./test/fakes
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# Memory, sized for the pod's 512 Mi limit (docs/stream-health.md, "Capacity"; runbook, "Memory"): V8's old space
# capped at 224 MB and its young generation kept small, so the heap stays near what is live instead of growing
# with garbage up to a quarter of the container; two malloc arenas instead of one per thread. A 50k-match sweep
# runs in about 230–250 MiB RSS this way. Raise --max-old-space-size with the container limit, never above it.
ENV NODE_OPTIONS="--max-old-space-size=224 --max-semi-space-size=4" \
    MALLOC_ARENA_MAX=2
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
# The operator console (/console): plain files, served as they are.
COPY console ./console
USER node
EXPOSE 8080
# SIGTERM drains (DRAIN_MS with /readyz 503), then stops within SHUTDOWN_TIMEOUT_MS.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/flock-workers.js"]
CMD ["start"]
