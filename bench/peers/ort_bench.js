#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU execution provider) on the exported onespike network.
//
//   node bench/peers/ort_bench.js MODEL.onnx INPUT.f32 --shape C,H,W [--logits OUT.f32]
//        [--configs 1:1,2:1,2:8,2x1:1,2x1:8|none] [--iters N] [--warmup N] [--engine NAME]
//        [--save-optimized OUT.onnx]
//
// INPUT.f32 holds N x C x H x W float32 tensors (bench/engine_tensors dump: onespike's own
// preprocessing, so every engine sees the same bytes). With --logits, each image is run alone
// (batch 1, one intra-op thread) and the N x classes logits are written there.
// Each config THREADS:BATCH gets its own session (graphOptimizationLevel 'all',
// intraOpNumThreads = THREADS, interOpNumThreads = 1, sequential execution); a call runs one
// [BATCH, C, H, W] tensor (a real batch), cycling through the images. After WARMUP calls, ITERS
// calls are timed one by one. A config SESSIONSxTHREADS:BATCH (e.g. 2x1:8) runs SESSIONS
// independent sessions of THREADS intra-op threads each, one per worker thread (the way
// onespike-serve runs one session per worker): each warms up, they start timing together, each
// times ITERS calls; images/s counts all sessions' images over the wall time until the last
// finishes. One JSON line per config on stdout (engine NAME, default "ort"; threads = sessions *
// intra-op threads; "sessions" and "intra_op" say how). --configs none: logits only.
// --save-optimized writes the graph ORT runs after its optimisations (to check fusions).
//
// onnxruntime-node is looked up from the repository root's node_modules (npm install
// --ignore-scripts onnxruntime-node), or wherever NODE_PATH points.
'use strict';
const fs = require('fs');
const path = require('path');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

function loadOrt() {
  const root = path.resolve(__dirname, '..', '..');
  for (const p of [path.join(root, 'node_modules', 'onnxruntime-node'), 'onnxruntime-node']) {
    try {
      return require(p);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  console.error('ort_bench: onnxruntime-node not found (npm install --ignore-scripts onnxruntime-node)');
  process.exit(2);
}

function parseArgs(argv) {
  const a = {
    configs: '1:1,2:1,2:8', iters: 300, warmup: 20, logits: null, shape: null, engine: 'ort',
    'save-optimized': null, pos: [],
  };
  const valued = ['--configs', '--iters', '--warmup', '--logits', '--shape', '--engine',
    '--save-optimized'];
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (valued.includes(k)) {
      if (i + 1 >= argv.length) throw new Error(`${k} needs a value`);
      a[k.slice(2)] = argv[++i];
    } else if (k.startsWith('--')) {
      throw new Error(`unknown option ${k}`);
    } else {
      a.pos.push(k);
    }
  }
  if (a.pos.length !== 2 || !a.shape) {
    throw new Error('usage: ort_bench.js MODEL.onnx INPUT.f32 --shape C,H,W [...]');
  }
  a.shape = a.shape.split(',').map(Number);
  a.iters = Number(a.iters);
  a.warmup = Number(a.warmup);
  if (a.shape.length !== 3 || a.shape.some((d) => !(d >= 1)) || !(a.iters >= 1) || !(a.warmup >= 0)) {
    throw new Error('bad --shape, --iters or --warmup');
  }
  a.configs = a.configs === 'none' ? [] : a.configs.split(',').map((c) => {
    const m = /^(?:(\d+)x)?(\d+):(\d+)$/.exec(c);
    if (!m) throw new Error(`bad config ${c} (THREADS:BATCH or SESSIONSxTHREADS:BATCH)`);
    const cfg = { sessions: m[1] ? Number(m[1]) : 1, threads: Number(m[2]), batch: Number(m[3]) };
    if (!(cfg.sessions >= 1 && cfg.threads >= 1 && cfg.batch >= 1)) throw new Error(`bad config ${c}`);
    cfg.workers = Boolean(m[1]);
    return cfg;
  });
  return a;
}

function percentile(sorted, q) {
  const r = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, r)) - 1];
}

function readInput(inputPath, shape) {
  const buf = fs.readFileSync(inputPath);
  const per = shape[0] * shape[1] * shape[2];
  if (buf.length === 0 || buf.length % (per * 4) !== 0) {
    throw new Error(`${inputPath}: ${buf.length} bytes, not a whole number of ${shape} float32 tensors`);
  }
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  return { all, per, n: all.length / per };
}

const sessionOpts = (threads, optimizedPath) => {
  const o = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  if (optimizedPath) o.optimizedModelFilePath = optimizedPath;
  return o;
};

// A batch of b images starting at image i (wrapping), as an ORT tensor; built before timing.
function batchTensor(ort, inp, shape, i, b) {
  const { all, per, n } = inp;
  const x = new Float32Array(b * per);
  for (let j = 0; j < b; j++) x.set(all.subarray(((i + j) % n) * per, ((i + j) % n + 1) * per), j * per);
  return new ort.Tensor('float32', x, [b, ...shape]);
}

// One session of `threads` intra-op threads: warm up, then (after `ready()` resolves) time
// `iters` calls of `batch` images starting at image `first`. Returns per-call ms.
async function timeSession(ort, modelPath, inp, shape, threads, batch, iters, warmup, first, ready) {
  const s = await ort.InferenceSession.create(modelPath, sessionOpts(threads));
  const feeds = [];
  for (let i = 0; i < inp.n; i += batch) feeds.push({ input: batchTensor(ort, inp, shape, (first + i) % inp.n, batch) });
  let f = 0;
  for (let i = 0; i < warmup; i++) await s.run(feeds[f++ % feeds.length]);
  await ready();
  const times = new Float64Array(iters);
  for (let i = 0; i < iters; i++) {
    const c0 = process.hrtime.bigint();
    await s.run(feeds[f++ % feeds.length]);
    times[i] = Number(process.hrtime.bigint() - c0) / 1e6;
  }
  await s.release();
  return times;
}

// Worker side of a SESSIONSxTHREADS config: one session, started by the main thread's "go".
async function workerMain() {
  const ort = loadOrt();
  const d = workerData;
  const inp = readInput(d.inputPath, d.shape);
  const ready = () => new Promise((resolve) => {
    parentPort.once('message', (m) => { if (m === 'go') resolve(); });
    parentPort.postMessage({ ready: true });
  });
  const times = await timeSession(ort, d.modelPath, inp, d.shape, d.threads, d.batch, d.iters,
    d.warmup, d.first, ready);
  parentPort.postMessage({ times: Array.from(times), end: process.hrtime.bigint().toString() });
}

// SESSIONS workers; wall time from "go" to the last one's end.
function timeWorkers(a, modelPath, inputPath, n, cfg) {
  return new Promise((resolve, reject) => {
    const ws = [];
    let ready = 0, done = 0, t0 = 0n, tEnd = 0n;
    const times = [];
    for (let k = 0; k < cfg.sessions; k++) {
      const w = new Worker(__filename, {
        workerData: {
          modelPath, inputPath, shape: a.shape, threads: cfg.threads, batch: cfg.batch,
          iters: a.iters, warmup: a.warmup, first: Math.floor((k * n) / cfg.sessions),
        },
      });
      w.on('error', reject);
      w.on('message', (m) => {
        if (m.ready && ++ready === cfg.sessions) {
          t0 = process.hrtime.bigint();
          ws.forEach((x) => x.postMessage('go'));
        } else if (m.times) {
          times.push(...m.times);
          const e = BigInt(m.end);
          if (e > tEnd) tEnd = e;
          if (++done === cfg.sessions) resolve({ times: Float64Array.from(times), secs: Number(tEnd - t0) / 1e9 });
        }
      });
      ws.push(w);
    }
  });
}

async function main() {
  const ort = loadOrt();
  const a = parseArgs(process.argv.slice(2));
  const [modelPath, inputPath] = a.pos;
  const inp = readInput(inputPath, a.shape);
  const n = inp.n;

  if (a.logits || a['save-optimized']) {
    const s = await ort.InferenceSession.create(modelPath, sessionOpts(1, a['save-optimized']));
    if (a.logits) {
      const outs = [];
      for (let i = 0; i < n; i++) {
        const r = await s.run({ input: batchTensor(ort, inp, a.shape, i, 1) });
        outs.push(Float32Array.from(r.logits.data));
      }
      const k = outs[0].length;
      const flat = new Float32Array(n * k);
      outs.forEach((o, i) => flat.set(o, i * k));
      fs.writeFileSync(a.logits, Buffer.from(flat.buffer));
    }
    await s.release();
  }

  for (const cfg of a.configs) {
    let times, secs;
    if (cfg.workers) {
      ({ times, secs } = await timeWorkers(a, modelPath, inputPath, n, cfg));
    } else {
      let t0 = 0n;
      const ready = async () => { t0 = process.hrtime.bigint(); };
      times = await timeSession(ort, modelPath, inp, a.shape, cfg.threads, cfg.batch, a.iters,
        a.warmup, 0, ready);
      secs = Number(process.hrtime.bigint() - t0) / 1e9;
    }
    times.sort();
    const calls = times.length, images = calls * cfg.batch;
    console.log(JSON.stringify({
      engine: a.engine, version: ort.env.versions ? ort.env.versions.common : undefined,
      threads: cfg.sessions * cfg.threads, sessions: cfg.sessions, intra_op: cfg.threads,
      batch: cfg.batch, calls, images, seconds: +secs.toFixed(4),
      images_per_s: +(images / secs).toFixed(2),
      median_ms: +percentile(times, 50).toFixed(4), p90_ms: +percentile(times, 90).toFixed(4),
    }));
  }
}

(isMainThread ? main() : workerMain()).catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
