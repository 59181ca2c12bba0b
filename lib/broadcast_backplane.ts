/**
 * {@linkcode BroadcastChannelBackplane}: a {@linkcode Backplane} over the web
 * platform's `BroadcastChannel`, for workers of one process and, on Deno
 * Deploy, for the isolates of one deployment.
 *
 * @module
 */

import type { Backplane } from "./topics.ts";

/** Options for {@linkcode BroadcastChannelBackplane}. */
export interface BroadcastChannelBackplaneOptions {
  /**
   * The channel's name: backplanes with the same name reach each other.
   *
   * @default {"websocket-streams-topics"}
   */
  name?: string;
}

interface Envelope {
  topic: string;
  bytes: Uint8Array;
}

/**
 * A {@linkcode Backplane} over one `BroadcastChannel`. A channel never hears
 * its own messages, so a message is handed to this instance's subscribers
 * first (in the next microtask), then posted to the others.
 *
 * Delivery is at most once and ordered per sender (the structured clone of
 * `postMessage`); there is no order across senders, no replay, and a
 * worker that is not running misses what is posted meanwhile.
 *
 * @example Two topics instances share a channel
 * ```ts
 * import { BroadcastChannelBackplane } from "@seed/websocket-streams";
 * import { assertEquals } from "@std/assert";
 *
 * const here = new BroadcastChannelBackplane({ name: "doc-example" });
 * const there = new BroadcastChannelBackplane({ name: "doc-example" });
 * const got = Promise.withResolvers<Uint8Array>();
 * const stop = await there.subscribe("news", got.resolve);
 * await here.publish("news", new Uint8Array([1, 2, 3]));
 * assertEquals(await got.promise, new Uint8Array([1, 2, 3]));
 * stop();
 * here.close();
 * there.close();
 * ```
 */
export class BroadcastChannelBackplane implements Backplane {
  #channel: BroadcastChannel;
  #listeners = new Map<string, Set<(bytes: Uint8Array) => void>>();
  #closed = false;

  /**
   * Opens the channel.
   *
   * @param options The channel's name.
   */
  constructor(options: BroadcastChannelBackplaneOptions = {}) {
    this.#channel = new BroadcastChannel(
      options.name ?? "websocket-streams-topics",
    );
    this.#channel.onmessage = (event: MessageEvent<Envelope>) => {
      const { topic, bytes } = event.data ?? {};
      if (typeof topic === "string" && bytes instanceof Uint8Array) {
        this.#dispatch(topic, bytes);
      }
    };
  }

  /**
   * Hands `bytes` to this instance's subscribers of `topic` and posts it to
   * the other instances.
   *
   * @param topic The topic.
   * @param bytes The message.
   * @returns Resolves once posted.
   * @throws {TypeError} Once closed.
   */
  publish(topic: string, bytes: Uint8Array): Promise<void> {
    if (this.#closed) {
      throw new TypeError("Cannot publish message: the backplane is closed");
    }
    queueMicrotask(() => this.#dispatch(topic, bytes));
    this.#channel.postMessage({ topic, bytes } satisfies Envelope);
    return Promise.resolve();
  }

  /**
   * Calls `onMessage` with each message on `topic` from any instance.
   *
   * @param topic The topic.
   * @param onMessage Called with each message.
   * @returns Resolves with the function that ends the subscription.
   */
  subscribe(
    topic: string,
    onMessage: (bytes: Uint8Array) => void,
  ): Promise<() => void> {
    let listeners = this.#listeners.get(topic);
    if (listeners === undefined) {
      this.#listeners.set(topic, listeners = new Set());
    }
    listeners.add(onMessage);
    return Promise.resolve(() => {
      listeners.delete(onMessage);
      if (listeners.size === 0 && this.#listeners.get(topic) === listeners) {
        this.#listeners.delete(topic);
      }
    });
  }

  /** Closes the channel; nothing is heard or posted after it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#channel.close();
  }

  #dispatch(topic: string, bytes: Uint8Array): void {
    const listeners = this.#listeners.get(topic);
    if (listeners === undefined) return;
    for (const listener of listeners) listener(bytes);
  }
}
