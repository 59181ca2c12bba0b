/**
 * Private: a request body read whole, up to a bound, for the Comet
 * servers' `POST`s (`polling/server.ts`, `realtime/server.ts`).
 *
 * @module
 */

/**
 * Reads a request's body as UTF-8 text (malformed bytes become U+FFFD), at
 * most `max` bytes: a larger `content-length` is refused before any byte is
 * read, and a body that runs past `max` is cancelled there. No body reads
 * as `""`.
 *
 * @param request The request.
 * @param max The most bytes taken.
 * @returns The text, or `undefined` when the body is larger than `max`.
 */
export async function readBody(
  request: Request,
  max: number,
): Promise<string | undefined> {
  const length = Number(request.headers.get("content-length") ?? 0);
  if (length > max) {
    await request.body?.cancel();
    return undefined;
  }
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    if (size > max) return undefined; // leaving the loop cancels the body
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return new TextDecoder().decode(bytes);
}
