/**
 * Private: the rules for numeric options, and their checks. Every entry
 * point runs them once, before any I/O, so that a value that would misbehave
 * later fails at once and names itself: a `fragmentSize` of 0 looped forever,
 * a `NaN` limit compares false with everything and so turned the limit off,
 * and a delay past 2^31 - 1 ms fires at once. The errors read
 * `Cannot <action>: <option> must be <rule>, not <value>`: a `RangeError`
 * for a number out of its rule, a `TypeError` for a value of another type
 * (and for a number where an object belongs).
 * `undefined` means the default.
 *
 * @module
 */

/** What a numeric option may be. */
export interface NumberRule {
  /** The least value allowed. */
  min: number;
  /** The largest finite value allowed; `Number.MAX_SAFE_INTEGER` if unset. */
  max?: number;
  /** A duration's unit, named in the message; only durations take fractions. */
  unit?: "milliseconds" | "seconds";
  /** `Infinity` is allowed: it turns a limit off. */
  infinity?: boolean;
  /** `undefined` is refused: the option has no default. */
  required?: boolean;
  /** The rule in words, when the one derived from the fields is not it. */
  what?: string;
}

/** Option names and their rules. */
export type Rules = readonly (readonly [string, NumberRule])[];

// setTimeout's largest delay: Deno fires a longer one (Infinity included)
// after 1 ms.
const MAX_DELAY = 2 ** 31 - 1;

/** A byte count: 0 or more. */
const SIZE: NumberRule = { min: 0 };
/** A byte count: 1 or more. */
const POSITIVE_SIZE: NumberRule = { min: 1 };
/** A bound on what a peer sends: 0 or more, or Infinity for none. */
const LIMIT: NumberRule = { min: 0, infinity: true };
/** A count or size that must allow at least one: 1 or more, or Infinity. */
const POSITIVE_LIMIT: NumberRule = { min: 1, infinity: true };
/** A timer's delay, 0 allowed. */
const DELAY: NumberRule = {
  min: 0,
  max: MAX_DELAY,
  unit: "milliseconds",
};
/** A timer's delay that must leave time to act: 1 ms or more. */
const POSITIVE_DELAY: NumberRule = {
  min: 1,
  max: MAX_DELAY,
  unit: "milliseconds",
};

/** The options every connection takes, wherever it is made. */
const CONNECTION: Rules = [
  ["closeTimeout", DELAY],
  ["sendTimeout", DELAY],
  // 0 would never read: the read loop reads while the queue wants more.
  ["readableHighWaterMark", POSITIVE_SIZE],
  ["writableHighWaterMark", SIZE],
  ["fragmentSize", POSITIVE_LIMIT],
  ["maxFrameSize", LIMIT],
  ["maxMessageSize", LIMIT],
  // The first frame is not counted against it: 0 would mean 1.
  ["maxFragments", POSITIVE_LIMIT],
];
/** The bounds of a raw-socket handshake (`connect`, `serve`). */
export const HANDSHAKE: Rules = [
  ["handshakeTimeout", POSITIVE_DELAY],
  ["maxHeaderSize", POSITIVE_SIZE],
];
/** The redirects a client follows. */
const REDIRECTS: Rules = [["maxRedirects", { min: 0, max: 20 }]];
/** The listening port of `serve`. */
export const PORT: Rules = [["port", { min: 0, max: 65535 }]];
/** `FrameParser` and `FrameDecoderStream`. */
export const FRAME: Rules = [
  ["maxFrameSize", LIMIT],
  // RFC 6455 §5.2: RSV1, RSV2, RSV3 as bits 4, 2, 1.
  ["allowedRsv", { min: 0, max: 7 }],
];
/** `MessageAssembler` and `MessageDecoderStream`. */
export const MESSAGE: Rules = [
  ["maxMessageSize", LIMIT],
  ["maxFragments", POSITIVE_LIMIT],
];
/** `encodeMessage` and `MessageEncoderStream`. */
export const ENCODE: Rules = [["fragmentSize", POSITIVE_LIMIT]];
/** `upgradeWebSocket` and `UpgradedWebSocket`. */
export const UPGRADE: Rules = [
  // Deno's own: it pings after half of it, so it must fit a timer in ms.
  ["idleTimeout", {
    min: 0,
    max: Math.floor(MAX_DELAY / 1000),
    unit: "seconds",
  }],
  ["maxQueuedBytes", LIMIT],
  ["maxMessageSize", LIMIT],
  ["writableHighWaterMark", SIZE],
  ["sendTimeout", DELAY],
  ["closeTimeout", DELAY],
];

const WINDOW_BITS: NumberRule = { min: 8, max: 15 };
// zlib's ranges (deflateInit2).
const DEFLATE: Rules = [
  ["threshold", LIMIT],
  ["level", { min: 0, max: 9 }],
  ["memLevel", { min: 1, max: 9 }],
  ["serverMaxWindowBits", WINDOW_BITS],
];
const CLIENT_WINDOW_BITS: NumberRule = {
  ...WINDOW_BITS,
  what: "true, false or an integer from 8 to 15",
};
// What a negotiation settled: every number is there.
const NEGOTIATED: Rules = [
  ...DEFLATE,
  ["clientMaxWindowBits", WINDOW_BITS] as const,
].map(([name, rule]) => [name, { ...rule, required: true }] as const);
const HEARTBEAT: Rules = [
  ["interval", { ...POSITIVE_DELAY, required: true }],
  ["timeout", { ...POSITIVE_DELAY, required: true }],
];

/**
 * A value for an error message: strings quoted, as JSON shows them, and
 * `NaN`, `Infinity`, `-0` and `undefined` as JavaScript writes them.
 */
export function show(value: unknown): string {
  switch (typeof value) {
    case "number":
      return Object.is(value, -0) ? "-0" : String(value);
    case "bigint":
      return `${value}n`;
    case "function":
      return `function ${value.name || "(anonymous)"}`;
    case "object": {
      if (value === null) return "null";
      let text: string | undefined;
      try {
        text = JSON.stringify(value);
      } catch {
        // A cycle or a bigint inside.
      }
      text ??= Object.prototype.toString.call(value);
      return text.length > 60 ? `${text.slice(0, 57)}...` : text;
    }
    case "string":
      return JSON.stringify(
        value.length > 60 ? `${value.slice(0, 57)}...` : value,
      );
    default:
      return String(value);
  }
}

function describe(rule: NumberRule): string {
  if (rule.what) return rule.what;
  const { min, max, unit } = rule;
  const what = unit
    ? `a number of ${unit} from ${min} to ${max}`
    : max !== undefined
    ? `an integer from ${min} to ${max}`
    : min === 0
    ? "a non-negative integer"
    : "a positive integer";
  return rule.infinity ? `${what} or Infinity` : what;
}

/**
 * The error for an option: a `RangeError` for a number, a `TypeError` for
 * any other type.
 */
export function optionError(
  action: string,
  name: string,
  value: unknown,
  what: string,
): RangeError | TypeError {
  const message = `Cannot ${action}: ${name} must be ${what}, not ${
    show(value)
  }`;
  return typeof value === "number"
    ? new RangeError(message)
    : new TypeError(message);
}

function fits(value: unknown, rule: NumberRule): boolean {
  if (value === undefined) return !rule.required;
  if (typeof value !== "number") return false;
  if (value === Infinity) return rule.infinity === true;
  // NaN fails both comparisons.
  return value >= rule.min && value <= (rule.max ?? Number.MAX_SAFE_INTEGER) &&
    (rule.unit !== undefined || Number.isInteger(value));
}

/**
 * Checks the options named in `rules`; `prefix` goes before each name in a
 * message (`"heartbeat."`).
 */
export function checkOptions(
  action: string,
  options: object,
  rules: Rules,
  prefix = "",
): void {
  const values = options as Record<string, unknown>;
  for (let i = 0; i < rules.length; i++) {
    const [name, rule] = rules[i]!;
    const value = values[name];
    if (!fits(value, rule)) {
      throw optionError(action, prefix + name, value, describe(rule));
    }
  }
}

function checkObject(
  action: string,
  name: string,
  value: unknown,
  what: string,
): asserts value is object {
  if (typeof value !== "object" || value === null) {
    throw new TypeError(
      `Cannot ${action}: ${name} must be ${what}, not ${show(value)}`,
    );
  }
}

/** Checks a connection's options, `heartbeat` included. */
export function checkConnectionOptions(action: string, options: object): void {
  checkOptions(action, options, CONNECTION);
  const heartbeat = (options as { heartbeat?: unknown }).heartbeat;
  if (heartbeat !== undefined) {
    checkObject(
      action,
      "heartbeat",
      heartbeat,
      "an object { interval, timeout }",
    );
    checkOptions(action, heartbeat, HEARTBEAT, "heartbeat.");
  }
}

/**
 * Checks permessage-deflate options: an offer (client) or a policy
 * (server).
 */
export function checkDeflateOptions(
  action: string,
  options: object,
  prefix = "",
): void {
  checkOptions(action, options, DEFLATE, prefix);
  const bits = (options as { clientMaxWindowBits?: unknown })
    .clientMaxWindowBits;
  if (typeof bits !== "boolean" && !fits(bits, CLIENT_WINDOW_BITS)) {
    throw optionError(
      action,
      prefix + "clientMaxWindowBits",
      bits,
      describe(CLIENT_WINDOW_BITS),
    );
  }
}

/**
 * Checks the `perMessageDeflate` of `connect`, `acceptWebSocket` or
 * `serve`: a boolean, options, or (for `connect`) a list of offers.
 */
export function checkDeflateChoice(action: string, value: unknown): void {
  if (value === undefined || typeof value === "boolean") return;
  const list = Array.isArray(value);
  const offers: unknown[] = list ? value : [value];
  for (let i = 0; i < offers.length; i++) {
    const name = list ? `perMessageDeflate[${i}]` : "perMessageDeflate";
    const offer = offers[i];
    checkObject(action, name, offer, "true, false or an object of options");
    checkDeflateOptions(action, offer, name + ".");
  }
}

/**
 * Checks the `perMessageDeflate` a `TransportWebSocket` is given: the
 * outcome of a negotiation, every number required.
 */
export function checkNegotiatedDeflate(action: string, value: unknown): void {
  if (value === undefined) return;
  checkObject(
    action,
    "perMessageDeflate",
    value,
    "the negotiated parameters (an object)",
  );
  checkOptions(action, value, NEGOTIATED, "perMessageDeflate.");
}

/** Checks the options of `connect` (and of `WebSocketStream`). */
export function checkConnectOptions(action: string, options: object): void {
  checkConnectionOptions(action, options);
  checkOptions(action, options, HANDSHAKE);
  checkOptions(action, options, REDIRECTS);
  checkDeflateChoice(
    action,
    (options as { perMessageDeflate?: unknown }).perMessageDeflate,
  );
}

/**
 * Checks `allowedOrigins` (handshake/server.ts's `checkOrigin` applies it):
 * an array of `"*"`, `"null"` or origin URLs.
 */
export function checkAllowedOrigins(action: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value)) {
    throw new TypeError(
      `Cannot ${action}: allowedOrigins must be an array of origins, not ${
        show(value)
      }`,
    );
  }
  for (const entry of value) {
    let ok = entry === "*" || entry === "null";
    if (!ok && typeof entry === "string") {
      try {
        ok = new URL(entry).origin !== "null";
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      throw new TypeError(
        `Cannot ${action}: allowedOrigins holds ${
          show(entry)
        }, which is not "*", "null" or an origin such as "https://example.com"`,
      );
    }
  }
}
