// A BullMQ worker process for the queue baseline: a no-op processor on the bench's
// own queue. Started by bench/engine.mjs; waits for "go" before it takes jobs.
//   node bench/bullmq-worker.mjs <queue name> <concurrency>
import process from 'node:process';
import { Worker } from 'bullmq';

const [queueName, concurrency] = process.argv.slice(2);
const worker = new Worker(queueName, async () => undefined, {
  connection: { host: process.env.REDIS_HOST || '127.0.0.1', port: Number(process.env.REDIS_PORT || 6379) },
  concurrency: Number(concurrency),
  autorun: false,
});
worker.on('error', (err) => console.error(`bullmq worker: ${err.message}`));
await worker.waitUntilReady();
process.on('message', (msg) => {
  if (msg === 'go') void worker.run();
  if (msg === 'stop') void worker.close().then(() => process.exit(0));
});
process.send('ready');
