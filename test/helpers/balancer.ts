/**
 * A plain TCP load balancer for cluster tests, as one would put in front of the nodes: each new
 * connection goes to the first target (in order) that accepts it, so when a node dies its clients
 * reconnect to a survivor. It forwards raw bytes and knows nothing of the protocol.
 */
import net from 'node:net';

export interface Balancer {
  /** ws://127.0.0.1:<port> of the balancer. */
  readonly url: string;
  /** Connections currently open through it. */
  readonly connections: number;
  close(): Promise<void>;
}

/** Starts a balancer on 127.0.0.1 (random port) in front of 127.0.0.1:`ports`. */
export async function startBalancer(ports: number[]): Promise<Balancer> {
  const open = new Set<net.Socket>();
  const connectTo = (i: number, client: net.Socket): void => {
    if (i >= ports.length || client.destroyed) return void client.destroy();
    const upstream = net.connect(ports[i]!, '127.0.0.1');
    let connected = false;
    upstream.on('error', () => {
      if (!connected) connectTo(i + 1, client); // refused: the next target
    });
    upstream.once('connect', () => {
      connected = true;
      open.add(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      const done = () => {
        open.delete(upstream);
        client.destroy();
        upstream.destroy();
      };
      upstream.once('close', done);
      client.once('close', done);
    });
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    client.on('error', () => undefined);
    connectTo(0, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}`,
    get connections() {
      return open.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
