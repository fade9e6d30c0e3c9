// Prints the fetch statement graphile-worker 0.18.0 sends for a batch size, taken from its
// own code: its batchGetJobs runs against a stand-in client that records the statement
// instead of sending it. Usage: node reference_fetch.mjs <getJobs.js path> <schema> <batch>
import { pathToFileURL } from "node:url";

const [modulePath, schema, batch] = process.argv.slice(2);
const { batchGetJobs } = await import(pathToFileURL(modulePath).href);

let statement = null;
const client = {
  async query({ text }) {
    if (/^\s*with\b/i.test(text)) {
      statement = text;
      return { rows: [] };
    }
    // the task-id lookup: one task, id 1 (its value does not appear in the statement)
    return { rows: [{ id: 1, identifier: "bench_noop" }] };
  },
};
const withPgClient = async (callback) => callback(client);
withPgClient.withRetries = withPgClient;
const options = {
  escapedWorkerSchema: '"' + schema.replaceAll('"', '""') + '"',
  workerSchema: schema,
  resolvedPreset: { worker: { preparedStatements: true, useNodeTime: false } },
  logger: { error: (message) => { throw new Error(message); } },
};
await batchGetJobs(options, withPgClient, { bench_noop: () => {} }, "pool", null, Number(batch));
if (statement === null) {
  throw new Error("batchGetJobs sent no fetch statement");
}
process.stdout.write(statement);
