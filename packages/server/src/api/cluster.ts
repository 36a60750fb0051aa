/**
 * The server API in a cluster (docs/cluster.md#server-api): any node answers for the whole
 * cluster. The node that received a request authenticates it, charges its rate limit and validates
 * it; then the route's handler runs where its {@link Placement} says, on the validated request,
 * through calls between nodes:
 *   api          runs a route's handler on this node; answers with its result (errors keep their code)
 *   api.locate   whether this node hosts a conference, and whether a participant is connected here
 *                (`edge`) or takes part in rooms here through a stand-in (`stand-in`)
 *   api.standIn  runs a route's `standIn` on this node's stand-in of a participant
 * A node that does not answer fails the request with `cluster-unavailable` (HTTP 503).
 */
import type { Logger } from 'pino';
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import { callNode } from '../core/calls.js';
import type { ApiContext, ApiRequest, Placement, Route } from './routes.js';

/** What the server API needs of the cluster (implemented by cluster/cluster.ts). */
export interface ApiClusterPort {
  /** This node's number. */
  readonly no: number;
  /** Registers what this node answers to `rpc(…, method, …)`; a handler may return a promise. */
  handleRpc(method: string, handler: (args: unknown, from: number) => unknown): void;
  /** Calls `method` on node `no` (this one included); rejects with `cluster-unavailable` if it does not answer. */
  rpc(no: number, method: string, args: unknown): Promise<unknown>;
  /** Calls `method` on every live node, this one included; rejects if any does not answer. */
  rpcAll(method: string, args: unknown): Promise<{ node: { no: number }; result: unknown }[]>;
}

const RPC_API = 'api';
const RPC_LOCATE = 'api.locate';
const RPC_STAND_IN = 'api.standIn';

/** A validated request as it travels between nodes. */
interface WireRequest {
  /** The route's operationId. */
  op: string;
  params: Record<string, string>;
  /** The query string, without `?`. */
  query: string;
  body: unknown;
}

/** What `api.locate` asks. */
interface LocateQuery {
  conference?: string;
  participant?: string;
}

/** What `api.locate` answers. */
interface Located {
  conference?: boolean;
  participant?: 'edge' | 'stand-in';
}

/** Registers the calls through which other nodes run server API requests on this node. */
export function serveApi(cluster: ApiClusterPort, routes: readonly Route[], ctx: ApiContext, log: Logger): void {
  const byOp = new Map(routes.map((r) => [r.operationId, r]));
  const routeOf = (op: string): Route => {
    const route = byOp.get(op);
    if (!route) throw new BackchannelError(ErrorCode.NotFound, `node ${cluster.no} has no server API operation ${op} (a node of another version?)`);
    return route;
  };
  // Errors other than BackchannelErrors reach the asking node as a bare `internal-error`: log them here.
  const logged =
    (answer: (w: WireRequest) => unknown) =>
    async (args: unknown, from: number): Promise<unknown> => {
      try {
        return (await answer(args as WireRequest)) ?? null;
      } catch (error) {
        if (!(error instanceof BackchannelError)) log.error({ err: error, op: (args as WireRequest).op, from }, 'server API request from another node failed');
        throw error;
      }
    };
  cluster.handleRpc(RPC_API, logged((w) => routeOf(w.op).handler(ctx, requestOf(w))));
  cluster.handleRpc(
    RPC_STAND_IN,
    logged((w) => {
      const route = routeOf(w.op);
      const placement = route.cluster;
      if (placement?.on !== 'edge') throw new BackchannelError(ErrorCode.InvalidArgument, `${w.op} does not run on a participant's edge`);
      const req = requestOf(w);
      const peer = ctx.hub.peers.get(placement.participant(req));
      if (peer && !peer.gone && peer.remote) placement.standIn(ctx, peer, req);
    }),
  );
  cluster.handleRpc(RPC_LOCATE, (args): Located => {
    const q = args as LocateQuery;
    const out: Located = {};
    if (q.conference !== undefined) {
      const room = ctx.hub.conferences.byName.get(q.conference);
      out.conference = room !== undefined && !room.ended;
    }
    if (q.participant !== undefined) {
      const peer = ctx.hub.peers.get(q.participant);
      if (peer && !peer.gone) out.participant = peer.remote ? 'stand-in' : 'edge';
    }
    return out;
  });
}

/**
 * Answers `req` of `route` for the whole cluster, running its handler where `placement` (the
 * route's own) says. When nothing in the cluster has what the request names, this node's handler
 * answers it, so the 404 is the one a single server gives.
 */
export async function runInCluster(cluster: ApiClusterPort, route: Route, placement: Placement, ctx: ApiContext, req: ApiRequest): Promise<unknown> {
  const wire: WireRequest = { op: route.operationId, params: req.params, query: req.query.toString(), body: req.body };
  switch (placement.on) {
    case 'every-node': {
      const answers = await cluster.rpcAll(RPC_API, wire);
      return placement.merge(answers.map((a) => a.result), req);
    }
    case 'room-host': {
      const room = placement.room(req);
      if (room.kind === 'call') return onCallHost(cluster, callNode(room.name), route, ctx, req, wire);
      const host = (await locate(cluster, { conference: room.name })).find((l) => l.found.conference)?.no;
      return host === undefined ? route.handler(ctx, req) : cluster.rpc(host, RPC_API, wire);
    }
    case 'edge': {
      const found = await locate(cluster, { participant: placement.participant(req) });
      const edge = found.find((l) => l.found.participant === 'edge')?.no;
      if (edge === undefined) return route.handler(ctx, req);
      // A node that fails to run `standIn` does not stop the request at the edge: the edge's
      // disconnect (or the loss of the link to it) removes the stand-ins it left there anyway.
      await Promise.allSettled(found.filter((l) => l.found.participant === 'stand-in').map((l) => cluster.rpc(l.no, RPC_STAND_IN, wire)));
      return cluster.rpc(edge, RPC_API, wire);
    }
  }
}

/** Runs `route` on node `no`, the host its call id names. */
async function onCallHost(cluster: ApiClusterPort, no: number, route: Route, ctx: ApiContext, req: ApiRequest, wire: WireRequest): Promise<unknown> {
  // Not a cluster call id (no node number): no node hosts it.
  if (no === 0) return route.handler(ctx, req);
  try {
    return await cluster.rpc(no, RPC_API, wire);
  } catch (error) {
    if (!(error instanceof BackchannelError) || error.code !== ErrorCode.ClusterUnavailable) throw error;
    // A node that left the cluster took its calls with it: that is a 404, not an outage.
    const live = await cluster.rpcAll(RPC_LOCATE, {});
    if (live.some((a) => a.node.no === no)) throw error;
    return route.handler(ctx, req);
  }
}

async function locate(cluster: ApiClusterPort, q: LocateQuery): Promise<{ no: number; found: Located }[]> {
  return (await cluster.rpcAll(RPC_LOCATE, q)).map((a) => ({ no: a.node.no, found: a.result as Located }));
}

function requestOf(w: WireRequest): ApiRequest {
  return { params: w.params, query: new URLSearchParams(w.query), body: w.body };
}
