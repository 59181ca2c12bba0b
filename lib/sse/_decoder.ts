/**
 * Private: the HTML standard's "UTF-8 decode" of an event stream, chunk by
 * chunk.
 *
 * @module
 */

/**
 * Decodes UTF-8 pieces of one stream: bad bytes become U+FFFD, and a BOM
 * is stripped only at the very start of the stream (HTML §9.2.6, via the
 * Encoding standard's "UTF-8 decode").
 *
 * `TextDecoder` strips the BOM itself unless `ignoreBOM` is set, but Deno's
 * (2.9) also strips one that starts any later chunk of a stream that did
 * not begin with a BOM, which would drop a U+FEFF from an event's data; so
 * the decoder keeps every BOM and this strips the first.
 */
export class Utf8StreamDecoder {
  #decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  #started = false;

  /** Decodes the next piece; `undefined` ends the stream. */
  decode(chunk?: Uint8Array): string {
    let text = chunk === undefined
      ? this.#decoder.decode()
      : this.#decoder.decode(chunk, { stream: true });
    if (!this.#started && text !== "") {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    return text;
  }
}
