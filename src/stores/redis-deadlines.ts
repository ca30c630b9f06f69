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
}

/**
 * From now on, every command `client` sends fails with "Command timed out" when it has no
 * answer `timeoutMs` after it was sent (or queued while the connection is being made, as with
 * ioredis' option). Returns a function that stops watching (the store's `close()`).
 */
export function failCommandsAfter(client: Redis, timeoutMs: number): () => void {
  const queue: Deadline[] = [];
  let head = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;

  /** Drops answered commands from the front; answers arrive in send order, so few wait there. */
  const dropAnswered = (): void => {
    while (head < queue.length && (queue[head] as Deadline).command.isResolved) head++;
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
    while (head < queue.length) {
      const oldest = queue[head] as Deadline;
      if (!oldest.command.isResolved) {
        if (oldest.at > now) break;
        // A command failed earlier (a lost connection) is never "resolved": rejecting it again
        // changes nothing, its promise has settled.
        oldest.command.reject(new Error(TIMED_OUT));
      }
      head++;
    }
    dropAnswered();
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
      queue.push({ command, at: now + timeoutMs });
      arm(now);
    }
    return send(command, stream);
  };

  return () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
}
