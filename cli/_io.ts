// The CLI's plumbing shared by both commands: lines in, formatted messages
// out, one-line errors.

const encoder = new TextEncoder();

/** The longest stdin line sent as one message: 16 MiB. */
export const MAX_LINE = 16 * 1024 * 1024;

/** Writes a line to stderr at once, in order with everything else. */
export function printError(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) {
    written += Deno.stderr.writeSync(bytes.subarray(written));
  }
}

/**
 * Splits text into lines on `\n` (dropping a `\r` before it); a last line
 * with no newline is a line too. A line over `MAX_LINE` characters errors
 * the stream rather than grow without bound.
 */
export class LineStream extends TransformStream<string, string> {
  constructor() {
    // The pieces of the line still open; only new text is searched for
    // newlines, so a long line costs linear time, not quadratic.
    let pieces: string[] = [];
    let pending = 0;
    const tooLong = () =>
      new RangeError(
        `Cannot send: a line of stdin is over ${MAX_LINE} characters`,
      );
    const line = (last: string) => {
      if (pending + last.length > MAX_LINE + 1) throw tooLong();
      const text = pieces.join("") + last;
      pieces = [];
      pending = 0;
      const stripped = text.endsWith("\r") ? text.slice(0, -1) : text;
      if (stripped.length > MAX_LINE) throw tooLong();
      return stripped;
    };
    super({
      transform(chunk, controller) {
        let start = 0;
        let newline;
        while ((newline = chunk.indexOf("\n", start)) >= 0) {
          controller.enqueue(line(chunk.slice(start, newline)));
          start = newline + 1;
        }
        if (start < chunk.length) {
          pieces.push(chunk.slice(start));
          pending += chunk.length - start;
        }
        // One more for a "\r" whose "\n" is still to come.
        if (pending > MAX_LINE + 1) throw tooLong();
      },
      flush(controller) {
        if (pending > 0) controller.enqueue(line(""));
      },
    });
  }
}

/** Base64 of `bytes` (RFC 4648 §4), in slices that `btoa` can take. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** A message as `--json` prints it: `{"type":…,"data":…}`. */
export function messageJson(message: string | Uint8Array): string {
  return typeof message === "string"
    ? JSON.stringify({ type: "text", data: message })
    : JSON.stringify({ type: "binary", data: toBase64(message) });
}

/** A message as plain output prints it: text as is, binary as base64. */
export function messageText(message: string | Uint8Array): string {
  return typeof message === "string" ? message : toBase64(message);
}

/**
 * An OS error's message as a lower-case phrase, without Deno's
 * " (os error N)" suffix: "connection refused".
 */
export function reasonOf(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) {
    return "connection refused";
  }
  let message = error instanceof Error ? error.message : String(error);
  // Our own errors say "Cannot <action>: <reason>"; keep the reason.
  const cannot = /^Cannot [^:]*: (.*)$/s.exec(message);
  if (cannot) message = cannot[1]!;
  message = message.replace(/ \(os error \d+\)$/, "").split("\n")[0]!;
  return message.charAt(0).toLowerCase() + message.slice(1);
}
