#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU execution provider) on the exported onespike network.
//
//   node bench/peers/ort_bench.js MODEL.onnx INPUT.f32 --shape C,H,W [--logits OUT.f32]
//        [--configs 1:1,2:1,2:8] [--iters N] [--warmup N]
//
// INPUT.f32 holds N x C x H x W float32 tensors (bench/engine_tensors dump: onespike's own
// preprocessing, so every engine sees the same bytes). With --logits, each image is run alone
// (batch 1, one intra-op thread) and the N x classes logits are written there.
// Each config THREADS:BATCH gets its own session (graphOptimizationLevel 'all',
// intraOpNumThreads = THREADS, interOpNumThreads = 1, sequential execution); a call runs one
// [BATCH, C, H, W] tensor (a real batch), cycling through the images. After WARMUP calls, ITERS
// calls are timed one by one. One JSON line per config on stdout.
//
// onnxruntime-node is looked up from the repository root's node_modules (npm install
// --ignore-scripts onnxruntime-node), or wherever NODE_PATH points.
'use strict';
const fs = require('fs');
const path = require('path');

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
  const a = { configs: '1:1,2:1,2:8', iters: 300, warmup: 20, logits: null, shape: null, pos: [] };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (['--configs', '--iters', '--warmup', '--logits', '--shape'].includes(k)) {
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
  a.configs = a.configs.split(',').map((s) => s.split(':').map(Number));
  return a;
}

function percentile(sorted, q) {
  const r = Math.ceil((q / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, r)) - 1];
}

async function main() {
  const ort = loadOrt();
  const a = parseArgs(process.argv.slice(2));
  const [modelPath, inputPath] = a.pos;
  const buf = fs.readFileSync(inputPath);
  const per = a.shape[0] * a.shape[1] * a.shape[2];
  if (buf.length === 0 || buf.length % (per * 4) !== 0) {
    throw new Error(`${inputPath}: ${buf.length} bytes, not a whole number of ${a.shape} float32 tensors`);
  }
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const n = all.length / per;
  const opts = (threads) => ({
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  // A batch of b images starting at image i (wrapping), as an ORT tensor; built before timing.
  const batchTensor = (i, b) => {
    const x = new Float32Array(b * per);
    for (let j = 0; j < b; j++) x.set(all.subarray(((i + j) % n) * per, ((i + j) % n + 1) * per), j * per);
    return new ort.Tensor('float32', x, [b, ...a.shape]);
  };

  if (a.logits) {
    const s = await ort.InferenceSession.create(modelPath, opts(1));
    const outs = [];
    for (let i = 0; i < n; i++) {
      const r = await s.run({ input: batchTensor(i, 1) });
      outs.push(Float32Array.from(r.logits.data));
    }
    const k = outs[0].length;
    const flat = new Float32Array(n * k);
    outs.forEach((o, i) => flat.set(o, i * k));
    fs.writeFileSync(a.logits, Buffer.from(flat.buffer));
    await s.release();
  }

  for (const [threads, batch] of a.configs) {
    const s = await ort.InferenceSession.create(modelPath, opts(threads));
    const feeds = [];
    for (let i = 0; i < n; i += batch) feeds.push({ input: batchTensor(i, batch) });
    let f = 0;
    for (let i = 0; i < a.warmup; i++) await s.run(feeds[f++ % feeds.length]);
    const times = new Float64Array(a.iters);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < a.iters; i++) {
      const c0 = process.hrtime.bigint();
      await s.run(feeds[f++ % feeds.length]);
      times[i] = Number(process.hrtime.bigint() - c0) / 1e6;
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    times.sort();
    console.log(JSON.stringify({
      engine: 'ort', version: ort.env.versions ? ort.env.versions.common : undefined,
      threads, batch, calls: a.iters, images: a.iters * batch, seconds: +secs.toFixed(4),
      images_per_s: +((a.iters * batch) / secs).toFixed(2),
      median_ms: +percentile(times, 50).toFixed(4), p90_ms: +percentile(times, 90).toFixed(4),
    }));
    await s.release();
  }
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
