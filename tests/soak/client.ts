// A child process of the soak (tests/soak_test.ts): runs its slice of the
// clients against the server's URL, prints {"bytes": n} and exits 0, or
// prints the failure and exits 1. Past its deadline it prints which clients
// are still short of their messages (a lost message never comes, so it
// would otherwise wait for ever) and exits 1.
//
//   deno run -A tests/soak/client.ts <url> <from> <count> <messages> <deflate 0|1> <deadline ms>

import { runClients } from "./_clients.ts";

const [url, from, count, messages, deflate, deadline] = Deno.args;
const progress = new Int32Array(Number(count));
const watchdog = setTimeout(() => {
  const short: string[] = [];
  progress.forEach((got, i) => {
    if (got < Number(messages)) {
      short.push(`client ${Number(from) + i}: ${got}`);
    }
  });
  console.error(
    `deadline of ${deadline} ms passed; clients short of ${messages} messages: ${
      short.slice(0, 20).join(", ")
    }${short.length > 20 ? ` and ${short.length - 20} more` : ""}`,
  );
  Deno.exit(1);
}, Number(deadline));
try {
  const bytes = await runClients({
    url: url!,
    from: Number(from),
    count: Number(count),
    messages: Number(messages),
    deflate: deflate === "1",
    progress,
  });
  clearTimeout(watchdog);
  console.log(JSON.stringify({ bytes }));
} catch (error) {
  console.error(error);
  Deno.exit(1);
}
