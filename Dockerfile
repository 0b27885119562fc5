# The orchestrator image used by docker-compose.yml: API, webhooks and workers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY schemas ./schemas
COPY triggers ./triggers
COPY connectors ./connectors
COPY examples ./examples
RUN pip install --no-cache-dir .
ENV ORCHESTRATOR_HOST=0.0.0.0 ORCHESTRATOR_PORT=8080
EXPOSE 8080
ENTRYPOINT ["orchestrator"]
CMD ["serve"]
