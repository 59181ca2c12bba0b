// A child process of the soak (tests/soak_test.ts): runs its slice of the
// clients against the server's URL, prints {"bytes": n} and exits 0, or
// prints the failure and exits 1.
//
//   deno run -A tests/soak/client.ts <url> <from> <count> <messages> <deflate 0|1>

import { runClients } from "./_clients.ts";

const [url, from, count, messages, deflate] = Deno.args;
try {
  const bytes = await runClients({
    url: url!,
    from: Number(from),
    count: Number(count),
    messages: Number(messages),
    deflate: deflate === "1",
  });
  console.log(JSON.stringify({ bytes }));
} catch (error) {
  console.error(error);
  Deno.exit(1);
}
