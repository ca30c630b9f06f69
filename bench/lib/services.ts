/** The shared PostgreSQL the benchmarks may use (scratch tables only), if it answers. */
import { connect } from 'node:net';

export const POSTGRES_URL = process.env.COATCHECK_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 5432) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function postgresUrlIfUp(log: (line: string) => void): Promise<string | undefined> {
  if (await reachable(POSTGRES_URL)) return POSTGRES_URL;
  log(`!!! PostgreSQL not reachable at ${POSTGRES_URL}: its rows are skipped`);
  return undefined;
}
