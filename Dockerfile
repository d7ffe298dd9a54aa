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
