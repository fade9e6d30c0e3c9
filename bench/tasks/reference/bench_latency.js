// Records when the handler started (this process's clock), for the latency benchmark.
const { performance } = require("node:perf_hooks");

const INSERT =
  "insert into public.bench_latency (job_id, started_at) values ($1, to_timestamp($2))";

module.exports = async (payload, helpers) => {
  const started = (performance.timeOrigin + performance.now()) / 1000;
  await helpers.query(INSERT, [helpers.job.id, started]);
};
