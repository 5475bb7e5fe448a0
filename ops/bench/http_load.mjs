// Requests/s of one GET against sandboxd: C keep-alive connections, each
// sending its next request when the previous answer is read, for S seconds.
//   node http_load.mjs URL API_KEY [seconds=3] [connections=8]
import http from "node:http";

const [url, key, seconds = "3", conns = "8"] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conns) });
const until = Date.now() + Number(seconds) * 1000;
let done = 0, failed = 0, bytes = 0;
const lat = [];

function one() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const req = http.get(url, { agent, headers: { "X-API-Key": key, Connection: "keep-alive" } }, (res) => {
      res.on("data", (c) => (bytes += c.length));
      res.on("end", () => {
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        res.statusCode === 200 ? done++ : failed++;
        resolve();
      });
    });
    req.on("error", () => { failed++; resolve(); });
  });
}

async function loop() {
  while (Date.now() < until) await one();
}

const t0 = Date.now();
await Promise.all(Array.from({ length: Number(conns) }, loop));
const secs = (Date.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] ?? 0;
console.log(JSON.stringify({ rps: done / secs, failed, p50_ms: p(0.5), p99_ms: p(0.99),
                             bytes_per_response: done ? Math.round(bytes / done) : 0 }));
agent.destroy();
