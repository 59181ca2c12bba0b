/**
 * Private: the protocol engine. RFC 6455's rules, and RFC 7692's framing,
 * with no I/O, in the manner of python-websockets' sans-I/O `Protocol`:
 * bytes go in through {@linkcode Protocol.receive} and come out as events
 * (messages, pongs, the peer's close); messages and commands go in and come
 * out as frames in {@linkcode Protocol.outbox}. It answers pings, refuses
 * data after a close, sends a failure's close code, fragments on send and
 * sets RSV1 on compressed messages only. No sockets, timers, streams or
 * promises of its own: `TransportWebSocket` (and through it every public
 * face) runs on it, and tests drive it directly.
 *
 * @module
 */

import { frameBits, Outbox } from "./codec/_outbox.ts";
import {
  decodeCloseBody,
  encodeCloseBody,
  isValidCloseCode,
} from "./codec/close.ts";
import { WebSocketError } from "./errors.ts";
import { Opcode, type Role } from "./codec/frame.ts";
import { FrameParser } from "./codec/frame_parser.ts";
import {
  MessageAssembler,
  type MessageHandler,
  type MessageLimits,
} from "./codec/assembler.ts";
import { type MessageData, messagePayload } from "./codec/message.ts";

/** How a close frame read: its code (1005 when none) and reason. */
export interface CloseInfo {
  /** The code; 1005 when the frame carried none. */
  closeCode: number;
  /** The reason; `""` when none. */
  reason: string;
}

/** What the engine tells its face. */
export interface ProtocolEvents {
  /** A whole data message, in order. */
  message(data: string | Uint8Array): void;
  /**
   * A whole message with RSV1 set (permessage-deflate), still compressed:
   * the face inflates it (inflating is asynchronous) and keeps the order.
   */
  compressed(opcode: number, payload: Uint8Array): void;
  /** A pong, for the face's pings. */
  pong(payload: Uint8Array): void;
  /**
   * The peer's close frame. Nothing after it is read as data (RFC 6455
   * §5.5.1); the face echoes it with {@linkcode Protocol.close} when it
   * chooses (after the replies to the messages before it).
   */
  close(info: CloseInfo, body: Uint8Array): void;
  /** Bytes were queued in the outbox. */
  output(): void;
  /**
   * A ping waits for the outbox to drain (`pongLimit`): call
   * {@linkcode Protocol.sendPendingPong} once it has.
   */
  pongWaits(): void;
  /**
   * A message to send compressed: the face deflates `payload` and calls
   * {@linkcode Protocol.sendCompressed}. Called only with a threshold.
   */
  compress(opcode: Opcode, payload: Uint8Array): Promise<void>;
}

/** Options for {@linkcode Protocol}. */
export interface ProtocolOptions extends MessageLimits {
  /** Which end this is: it decides masking (RFC 6455 §5.1). */
  role: Role;
  /** The largest frame accepted; see `WebSocketConnectionOptions`. */
  maxFrameSize?: number;
  /** Split data messages into frames of at most this many bytes. */
  fragmentSize?: number;
  /** See `WebSocketConnectionOptions.shareBuffers`. */
  shareBuffers?: boolean;
  /**
   * Queued bytes past which pings are answered only once the outbox has
   * drained (see {@linkcode Protocol.sendPendingPong}), and then with one
   * pong for the latest ping, as RFC 6455 §5.5.3 allows: a peer that floods
   * pings and reads nothing cannot grow the outbox without bound.
   *
   * @default {Infinity}
   */
  pongLimit?: number;
  /**
   * With permessage-deflate negotiated, the size from which messages are
   * sent compressed; RSV1 is then allowed on received messages.
   *
   * @default {undefined (no compression: RSV1 fails with 1002)}
   */
  threshold?: number;
}

/** The protocol engine; see the module doc. */
export class Protocol implements MessageHandler {
  /** Frames to send, in order: the face writes them out. */
  readonly outbox: Outbox;
  /** Whether our close frame is queued: no data frame may follow it. */
  closeSent = false;
  /** The peer's close, once read: nothing after it is data. */
  closeReceived: CloseInfo | undefined;

  #events: ProtocolEvents;
  #parser: FrameParser;
  #assembler: MessageAssembler;
  #fragmentSize: number;
  #threshold: number;
  #deflate: boolean;
  #pongLimit: number;
  /** The latest ping's payload, answered once the outbox drains. */
  pendingPong: Uint8Array | undefined;

  /**
   * Makes an engine for one connection whose handshake is done.
   *
   * @param options The role, limits and negotiated compression.
   * @param events Where the engine's events go.
   */
  constructor(options: ProtocolOptions, events: ProtocolEvents) {
    this.#events = events;
    this.outbox = new Outbox(options.role === "client");
    this.#fragmentSize = options.fragmentSize ?? Infinity;
    this.#pongLimit = options.pongLimit ?? Infinity;
    this.#deflate = options.threshold !== undefined;
    this.#threshold = options.threshold ?? Infinity;
    this.#assembler = new MessageAssembler(
      { ...options, copy: true, shareBuffers: options.shareBuffers ?? true },
      this,
    );
    const assembler = this.#assembler;
    this.#parser = new FrameParser({
      // The parser checks masking for the receiving role: ours.
      role: options.role,
      maxFrameSize: options.maxFrameSize,
      // RFC 7692 §6: permessage-deflate owns RSV1.
      allowedRsv: this.#deflate ? 4 : 0,
      partial: true,
      reuseKey: true,
    }, assembler.push.bind(assembler));
  }

  // --- inbound -----------------------------------------------------------

  /**
   * Parses the next bytes from the peer; events come out as they complete.
   * After the peer's close frame, bytes are ignored (RFC 6455 §5.5.1).
   *
   * @param bytes The bytes, unmasked in place.
   * @param end Where they end in `bytes`.
   * @throws {WebSocketError} On the first protocol violation, with its close
   * code; the face fails the connection with it.
   */
  receive(bytes: Uint8Array, end: number = bytes.length): void {
    if (this.closeReceived) return;
    this.#parser.push(bytes, end);
  }

  /**
   * The payload bytes still to come in the frame being read.
   *
   * @returns The count (0 between frames).
   */
  get payloadRemaining(): number {
    return this.#parser.payloadRemaining;
  }

  /**
   * The payload bytes of the frame being read already taken.
   *
   * @returns The count (0 between frames).
   */
  get payloadReceived(): number {
    return this.#parser.payloadReceived;
  }

  /**
   * Room in the message being assembled for the next `n` bytes, to read
   * into directly (see `MessageAssembler.reserve`).
   *
   * @param n The bytes wanted.
   * @returns The view, or `undefined` when it cannot be had.
   */
  reserve(n: number): Uint8Array | undefined {
    return this.#assembler.reserve(n);
  }

  /** @internal The assembler's handler. */
  message(data: string | Uint8Array): void {
    if (!this.closeReceived) this.#events.message(data);
  }

  /** @internal The assembler's handler, with permessage-deflate. */
  compressed(opcode: number, payload: Uint8Array): void {
    if (!this.#deflate) {
      // Not reached: the parser refuses RSV1 without the extension.
      throw new WebSocketError(
        "Cannot decode frame: RSV1 is set and no extension allows it",
        { code: "ERR_UNEXPECTED_RSV" },
      );
    }
    if (!this.closeReceived) this.#events.compressed(opcode, payload);
  }

  /** @internal The assembler's handler for control frames. */
  control(opcode: number, payload: Uint8Array): void {
    // §5.5.1: nothing after the peer's close (the parser runs on to the
    // end of the chunk that held it).
    if (this.closeReceived) return;
    if (opcode === Opcode.Ping) {
      // RFC 6455 §5.5.3: answer with a pong carrying the same data; none
      // after our close frame (§5.5.1).
      if (this.closeSent) return;
      if (this.outbox.size > this.#pongLimit) {
        // The peer is not reading: keep only the latest ping to answer.
        if (this.pendingPong === undefined) this.#events.pongWaits();
        this.pendingPong = payload.slice();
        return;
      }
      this.outbox.push(frameBits(Opcode.Pong, true, false), payload);
      this.#events.output();
    } else if (opcode === Opcode.Pong) {
      this.#events.pong(payload);
    } else if (!this.closeReceived) {
      // decodeCloseBody throws on a bad code or UTF-8: a failure (§7.4.1).
      const info = decodeCloseBody(payload);
      this.closeReceived = info;
      this.#events.close(info, payload);
    }
  }

  // --- outbound ----------------------------------------------------------

  /**
   * Answers the latest ping that waited for the outbox to drain, if any.
   */
  sendPendingPong(): void {
    const payload = this.pendingPong;
    if (payload === undefined) return;
    this.pendingPong = undefined;
    if (this.closeSent) return;
    this.outbox.push(frameBits(Opcode.Pong, true, false), payload);
    this.#events.output();
  }

  /**
   * Encodes a data message: a string as text, bytes as binary; split at
   * `fragmentSize`; compressed (through the face) from the threshold.
   *
   * @param chunk The message.
   * @returns A promise when the message is being compressed first.
   * @throws {TypeError} After our close frame.
   * @throws {WebSocketError} `ERR_INVALID_MESSAGE` for a value that is not a
   * message; the face fails the connection with it.
   */
  send(chunk: MessageData): Promise<void> | undefined {
    if (this.closeSent) {
      throw new TypeError("Cannot send message: the connection is closing");
    }
    const outbox = this.outbox;
    // Text that will not be compressed (3 bytes per UTF-16 unit at most,
    // under the threshold) and fits one frame is encoded in place.
    if (
      typeof chunk === "string" && chunk.length * 3 < this.#threshold &&
      chunk.length * 3 <= this.#fragmentSize && outbox.pushText(chunk)
    ) {
      this.#events.output();
      return undefined;
    }
    // Bytes, the usual binary message, need no {opcode, payload} object.
    let opcode: Opcode = Opcode.Binary;
    let payload: Uint8Array;
    if (chunk instanceof Uint8Array) payload = chunk;
    else if (
      typeof chunk === "string" || ArrayBuffer.isView(chunk) ||
      chunk instanceof ArrayBuffer
    ) ({ opcode, payload } = messagePayload(chunk));
    else throw invalidMessage(chunk);
    if (payload.length >= this.#threshold) {
      return this.#events.compress(opcode, payload);
    }
    this.#sendData(opcode, payload, false);
    return undefined;
  }

  /**
   * Queues a message that the face has compressed: RSV1 on its first frame
   * (RFC 7692 §6.1).
   *
   * @param opcode Text or binary.
   * @param payload The compressed bytes.
   * @throws {TypeError} After our close frame.
   */
  sendCompressed(opcode: Opcode, payload: Uint8Array): void {
    if (this.closeSent) {
      throw new TypeError("Cannot send message: the connection is closing");
    }
    this.#sendData(opcode, payload, true);
  }

  #sendData(opcode: Opcode, payload: Uint8Array, compressed: boolean): void {
    const size = this.#fragmentSize;
    const outbox = this.outbox;
    if (payload.length <= size) {
      outbox.push(frameBits(opcode, true, compressed), payload);
    } else {
      for (let start = 0; start < payload.length; start += size) {
        const end = Math.min(start + size, payload.length);
        outbox.push(
          frameBits(
            start === 0 ? opcode : Opcode.Continuation,
            end === payload.length,
            // RFC 7692 §6.1: RSV1 on the first frame only.
            compressed && start === 0,
          ),
          payload.subarray(start, end),
        );
      }
    }
    this.#events.output();
  }

  /**
   * Queues a ping (RFC 6455 §5.5.2).
   *
   * @param payload At most 125 bytes (the caller checks).
   * @throws {TypeError} After our close frame.
   */
  ping(payload: Uint8Array): void {
    if (this.closeSent) {
      throw new TypeError("Cannot ping: the connection is closing");
    }
    this.outbox.push(frameBits(Opcode.Ping, true, false), payload);
    this.#events.output();
  }

  /**
   * Queues our close frame, unless one is queued already; no data frame
   * follows it. To echo the peer's close (RFC 6455 §5.5.1), pass its body.
   *
   * @param body The close frame's body (see `encodeCloseBody`).
   * @returns Whether a frame was queued.
   */
  close(body: Uint8Array): boolean {
    if (this.closeSent) return false;
    this.closeSent = true;
    this.outbox.push(frameBits(Opcode.Close, true, false), body);
    this.#events.output();
    return true;
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): queues a close frame with the
   * error's close code when that code may go on the wire (1006 may not).
   *
   * @param error The failure.
   */
  fail(error: WebSocketError): void {
    if (isValidCloseCode(error.closeCode)) {
      this.close(encodeCloseBody(error.closeCode, error.reason));
    }
  }
}

/** The error for a written value that is not a message, naming it. */
function invalidMessage(chunk: unknown): WebSocketError {
  const what = chunk === null || chunk === undefined
    ? String(chunk)
    : typeof chunk === "object"
    ? `an object (${
      Object.prototype.toString.call(chunk)
    }; serialize it first, for example with JSON.stringify)`
    : `the ${typeof chunk} ${String(chunk).slice(0, 40)}`;
  return new WebSocketError(
    `Cannot send message: expected a string, an ArrayBuffer or a view, not ${what}`,
    { code: "ERR_INVALID_MESSAGE" },
  );
}
