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
  /**
   * Failed (an error reply, a lost connection, or this module's timeout). ioredis marks only
   * successes (`isResolved`): without this, one error reply at the head of the queue would keep
   * every later command, answered or not, until its deadline.
   */
  failed: boolean;
}

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

  const settled = (deadline: Deadline): boolean => deadline.failed || deadline.command.isResolved;

  /** Drops answered commands from the front; answers arrive in send order, so few wait there. */
  const dropAnswered = (): void => {
    while (head < queue.length && settled(queue[head] as Deadline)) head++;
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
    let silent = false;
    while (head < queue.length) {
      const oldest = queue[head] as Deadline;
      if (!settled(oldest)) {
        if (oldest.at > now) break;
        oldest.command.reject(new Error(TIMED_OUT));
        silent = true;
      }
      head++;
    }
    dropAnswered();
    // Answers come in send order: an unanswered command past its deadline means the connection
    // has answered nothing for a whole timeout. A connection that stays open but silent (a
    // partition, a half-open socket, a stalled server) would otherwise keep every command sent
    // on it in ioredis' queue until TCP gives up, hours later: dropped and made again instead,
    // which also fails the commands behind it at once (failCommandsLostWithConnection).
    if (silent && client.status === 'ready') dropConnection(client);
    arm(now);
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
      dropAnswered();
      const now = performance.now();
      const deadline: Deadline = { command, at: now + timeoutMs, failed: false };
      queue.push(deadline);
      const reject = command.reject;
      command.reject = (error: Error) => {
        deadline.failed = true;
        reject(error);
      };
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
      dropAnswered();
      return queue.length - head;
    },
  };
}

/**
 * Closes the connection at once, as a lost one (ioredis then fails what it held and reconnects).
 * Not `disconnect(true)`: it ends the socket politely and waits up to 2 s for a peer that, here,
 * answers nothing.
 */
function dropConnection(client: Redis): void {
  const stream = (client as unknown as { stream?: { destroy(): void } }).stream;
  if (stream && typeof stream.destroy === 'function') stream.destroy();
  else client.disconnect(true);
}
