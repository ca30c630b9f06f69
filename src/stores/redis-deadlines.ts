/**
 * Fails the Redis commands that get no answer in time, with one timer per connection.
 *
 * Why not ioredis' `commandTimeout`: it arms a `setTimeout` per command and clears it on the
 * answer (deleting a property, which also moves each command object to V8's slow dictionary
 * mode), and with AsyncLocalStorage on, Node runs its async hooks for each of those timers. In a
 * client-only loop that cost about 0.5 µs of CPU per command (docs/stores/redis.md, "Failing
 * fast"). Every command here has the same timeout, so send order is deadline order: a FIFO queue
 * is enough, and one timer armed for the oldest command.
 *
 * @module
 */
import type { Command, Redis } from 'ioredis';

/** The error ioredis' own `commandTimeout` fails a command with: callers see the same thing. */
const TIMED_OUT = 'Command timed out';

interface Deadline {
  readonly command: Command;
  readonly at: number;
  /** The socket it was sent on: only silence on the current one says anything about it. */
  readonly on: unknown;
}

/** How many commands after an unresolved one are checked for a later answer (see dropAnswered). */
const LOOK_AHEAD = 8;

/**
 * From now on, every command `client` sends fails with "Command timed out" when it has no
 * answer `timeoutMs` after it was sent (or queued while the connection is being made, as with
 * ioredis' option). `stop()` stops watching (the store's `close()`); `pending()` counts the
 * commands still watched (for tests: answered ones must not linger).
 */
export function failCommandsAfter(client: Redis, timeoutMs: number): { stop(): void; pending(): number } {
  const queue: Deadline[] = [];
  let head = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  /** Commands sent longer ago than this (a deadline before it) are no longer merely in flight. */
  const STALE_MS = Math.min(50, timeoutMs / 2);

  /**
   * Drops answered commands from the front; answers arrive in send order, so few wait there.
   * ioredis marks only successes (`isResolved`), not error replies: a command at the front that
   * has waited a while is passed too once one of the next few sent on the same connection was
   * answered, since answers come in order. Without that, one error reply (a `CLIENT SETINFO` an older server refuses at every
   * connect) kept every later command watched until its deadline. Nothing is attached to the
   * commands themselves: wrapping each one's `reject` cost a quarter of the store's throughput.
   */
  const dropAnswered = (now: number): void => {
    for (;;) {
      while (head < queue.length && (queue[head] as Deadline).command.isResolved) head++;
      if (head === queue.length || (queue[head] as Deadline).at - timeoutMs + STALE_MS > now) break;
      const end = Math.min(queue.length, head + 1 + LOOK_AHEAD);
      // Only an answer on the same connection: one lost with its connection got none.
      const on = (queue[head] as Deadline).on;
      let later = head + 1;
      while (later < end && !((queue[later] as Deadline).command.isResolved && (queue[later] as Deadline).on === on)) later++;
      if (later === end) break;
      head = later;
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
  };

  const expire = (): void => {
    timer = null;
    const now = performance.now();
    dropAnswered(now);
    // Whether the newest command failed here had no answer after it either (see below).
    let silent = false;
    while (head < queue.length) {
      const oldest = queue[head] as Deadline;
      if (!oldest.command.isResolved) {
        if (oldest.at > now) break;
        // Settled already (an error reply, a lost connection): rejecting again changes nothing.
        oldest.command.reject(new Error(TIMED_OUT));
        // One sent on an earlier connection (lost since) or before this one was made says
        // nothing about this one.
        silent = oldest.on === streamOf(client);
      } else {
        silent = false; // a later command was answered: that one had its answer (an error)
      }
      head++;
    }
    // Answers come in send order: a command past its deadline with no command sent after it
    // answered means the connection has answered nothing for a whole timeout. One that stays
    // open but silent (a partition, a half-open socket, a stalled server) would otherwise keep
    // every command sent on it in ioredis' queue until TCP gives up, hours later: dropped and
    // made again instead, which also fails the commands behind it at once
    // (failCommandsLostWithConnection).
    if (silent && client.status === 'ready' && !answeredAfter(head)) dropConnection(client);
    dropAnswered(now);
    arm(now);
  };

  /** Whether any command from `from` on was answered (a scan, on the rare timeout path only). */
  const answeredAfter = (from: number): boolean => {
    for (let i = from; i < queue.length; i++) if ((queue[i] as Deadline).command.isResolved) return true;
    return false;
  };

  const arm = (now: number): void => {
    if (timer !== null || stopped || head === queue.length) return;
    timer = setTimeout(expire, Math.max(1, Math.ceil((queue[head] as Deadline).at - now)));
    // The connection keeps the process alive while commands are in flight; this timer need not.
    timer.unref();
  };

  const send = client.sendCommand.bind(client);
  // Every command goes through sendCommand (ioredis' own commandTimeout is applied there too).
  client.sendCommand = (command, stream) => {
    if (!stopped) {
      const now = performance.now();
      dropAnswered(now);
      queue.push({ command, at: now + timeoutMs, on: streamOf(client) });
      arm(now);
    }
    return send(command, stream);
  };

  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
    pending() {
      dropAnswered(performance.now());
      return queue.length - head;
    },
  };
}

/** The connection's current socket (ioredis replaces it on each reconnect). */
function streamOf(client: Redis): unknown {
  return (client as unknown as { stream?: unknown }).stream;
}

/**
 * Closes the connection at once, as a lost one (ioredis then fails what it held and reconnects).
 * Not `disconnect(true)`: it ends the socket politely and waits up to 2 s for a peer that, here,
 * answers nothing.
 */
function dropConnection(client: Redis): void {
  const stream = streamOf(client) as { destroy?: () => void } | undefined;
  if (stream && typeof stream.destroy === 'function') stream.destroy();
  else client.disconnect(true);
}
