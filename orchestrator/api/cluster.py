"""``GET /api/v1/cluster``: every node's last heartbeat, its status, partition ownership, lag;
``GET /api/v1/executions/{id}/trace``: an execution's events by node, and where its time went."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.requests import query_params, request_tenant
from orchestrator.api.routes import Permission, Route, path_param
from orchestrator.cluster.view import cluster_view
from orchestrator.history.trace import build_trace
from orchestrator.runtime import Runtime


class ClusterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: bool = Field(True, description="Include each node's effective configuration (secrets redacted).")


class TraceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(10_000, ge=1, le=100_000, description="The first this many events.")


class ClusterApi:
    """The cluster as the node directory (beside the event log) knows it."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", "/api/v1/cluster", self.cluster, Permission.CLUSTER_READ, "getCluster",
                "Nodes (alive, late, dead, left) with role, version, partitions, in-flight work, lag and "
                "configuration; partition ownership and partitions claimed twice.",
                "200:Cluster 400", query=ClusterParams,
            ),
            Route(
                "GET", "/api/v1/executions/{id}/trace", self.trace, Permission.EXECUTIONS_READ, "traceExecution",
                "Where an execution's time went: each event with the node that committed it and the delay "
                "since the one before, hand-offs between nodes, delays by event type, the slowest gaps.",
                "200:Trace 400 404", (path_param("id", "The execution id."),), query=TraceParams,
            ),
        ]

    async def cluster(self, request: web.Request) -> web.Response:
        params = query_params(request, ClusterParams)
        records = await self.runtime.nodes.nodes()
        view = cluster_view(records, self.runtime.clock())
        return web.json_response({"self": self.runtime.node.node_id, **view.to_dict(with_config=params.config)})

    async def trace(self, request: web.Request) -> web.Response:
        params = query_params(request, TraceParams)
        execution_id = request.match_info["id"]
        events = await self.runtime.history(execution_id, 0, params.limit, tenant=request_tenant(request))
        partition = self.runtime.transport.shard_of(execution_id)
        return web.json_response(build_trace(execution_id, partition, events).to_dict())
