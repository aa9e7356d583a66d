# One image for every service; the compose file picks the service by its command.
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
# A smaller young generation: ~10-100 MB less RSS per busy service (docs/performance.md, "Memory (issue 12)"); NODE_OPTIONS in .env replaces it.
ENV NODE_OPTIONS=--max-semi-space-size=8
COPY package.json package-lock.json ./
COPY libs/ libs/
COPY services/ services/
COPY cli/ cli/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY nats.conf ./
COPY config/ config/
USER node
# Node 24 runs the TypeScript sources directly (type stripping): no build step.
CMD ["node", "cli/src/main.ts", "help"]
