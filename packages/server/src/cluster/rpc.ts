/**
 * Calls between the nodes of a cluster: each node registers the remote procedures it answers, and
 * calls those of another node (or of every node) over the node links. A call is an `rpc` operation
 * and its answer an `rpr` one (see cluster.ts); a call that gets no answer in time, or whose node's
 * link closes first, fails with `cluster-unavailable`.
 */
import { BackchannelError, ErrorCode } from '@backchannel/protocol';
import type { NodeLink, Op } from './links.js';
import type { ClusterStore, NodeInfo } from './store.js';

/** How long a call between nodes may take before it fails with `cluster-unavailable`, ms. */
const RPC_TIMEOUT_MS = 5_000;

/** A remote procedure a node answers for the others. */
export type RpcHandler = (args: unknown, from: number) => unknown;

/** What the calls between nodes need of the cluster. */
export interface NodeRpcOptions {
  /** This node (`self.no`) and the live nodes. */
  store: Pick<ClusterStore, 'self' | 'nodes'>;
  /** The outgoing link to node `no`, opened if needed; undefined if no such live node. */
  linkTo(no: number): NodeLink | undefined;
}

/** A call made and not answered yet. */
interface Pending {
  /** The node called. */
  no: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class NodeRpc {
  readonly #o: NodeRpcOptions;
  readonly #handlers = new Map<string, RpcHandler>();
  readonly #pending = new Map<number, Pending>();
  #seq = 1;

  constructor(options: NodeRpcOptions) {
    this.#o = options;
  }

  /** Registers what this node answers to `call(…, method, …)`. */
  handle(method: string, handler: RpcHandler): void {
    this.#handlers.set(method, handler);
  }

  /** Calls `method` on node `no` (this one included); rejects with `cluster-unavailable` if it does not answer. */
  async call(no: number, method: string, args: unknown): Promise<unknown> {
    const self = this.#o.store.self.no;
    if (no === self) return this.#handlers.get(method)?.(args, self);
    const link = this.#o.linkTo(no);
    if (!link) throw new BackchannelError(ErrorCode.ClusterUnavailable, `node ${no} is not in the cluster`);
    const id = this.#seq++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new BackchannelError(ErrorCode.ClusterUnavailable, `node ${no} did not answer ${method} within ${RPC_TIMEOUT_MS} ms`));
      }, RPC_TIMEOUT_MS);
      this.#pending.set(id, { no, resolve, reject, timer });
      link.send({ o: 'rpc', id, m: method, a: args });
    });
  }

  /** Calls `method` on every live node; resolves with each node's answer. */
  callAll(method: string, args: unknown): Promise<{ node: NodeInfo; result: unknown }[]> {
    return Promise.all(this.#o.store.nodes().map(async (node) => ({ node, result: await this.call(node.no, method, args) })));
  }

  /** Answers a call (`rpc`) from node `from`. */
  answer(from: number, op: Op): void {
    const reply = (r: Op) => this.#o.linkTo(from)?.send(r);
    const handler = this.#handlers.get(op.m as string);
    if (!handler) return reply({ o: 'rpr', id: op.id, e: { code: ErrorCode.NotFound, message: `no remote procedure ${String(op.m)}` } });
    Promise.resolve()
      .then(() => handler(op.a, from))
      .then(
        (d) => reply({ o: 'rpr', id: op.id, d: d ?? null }),
        (error: unknown) => {
          const err = error instanceof BackchannelError ? error : new BackchannelError(ErrorCode.InternalError, 'internal server error');
          reply({ o: 'rpr', id: op.id, e: err.toJSON() });
        },
      );
  }

  /** Settles a call this node made with its answer (`rpr`). */
  answered(op: Op): void {
    const pending = this.#pending.get(op.id as number);
    if (!pending) return;
    this.#pending.delete(op.id as number);
    clearTimeout(pending.timer);
    if (op.e) {
      const e = op.e as { code: string; message: string; details?: Record<string, unknown> };
      pending.reject(new BackchannelError(e.code as never, e.message, e.details ? { details: e.details } : {}));
    } else pending.resolve(op.d);
  }

  /** The link to node `no` closed (`why`): the calls made to it fail with `cluster-unavailable`. */
  down(no: number, why: string): void {
    for (const [id, pending] of this.#pending) {
      if (pending.no !== no) continue;
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(new BackchannelError(ErrorCode.ClusterUnavailable, `node ${no} is gone (${why})`));
    }
  }
}
