// ONNX Runtime side of `make bench`: times the ONNX files that
// `torch_bench.py --onnx DIR` wrote (srcnn_b1, srcnn_b8, generator_h128_b16) on
// ONNX Runtime's CPU execution provider (onnxruntime-node, installed into
// .cache/ort by scripts/bench/ort_setup.sh), the way the other two sides time
// theirs: one warm-up run, then the median of --reps, each run being
// session.run on a fixed random input in [0, 1] and the read of its float32
// output. Prints one JSON line per workload.
//
//   node scripts/bench/ort_bench.js --ort .cache/ort --models DIR --threads 2 --reps 5 [--only NAME]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const WORKLOADS = [
  { name: 'srcnn_b1', shape: [1, 3, 128, 128] },
  { name: 'srcnn_b8', shape: [8, 3, 128, 128] },
  { name: 'generator_h128_b16', shape: [16, 100] },
];

function args() {
  const a = { ort: '.cache/ort', models: '', threads: 2, reps: 5, only: '' };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a) || i + 1 >= v.length) throw new Error(`ort_bench: bad argument ${v[i]}`);
    a[k] = typeof a[k] === 'number' ? Number(v[i + 1]) : v[i + 1];
  }
  if (!a.models) throw new Error('ort_bench: --models DIR is required');
  return a;
}

// A fixed pseudo-random input (xorshift32), so every run of the bench feeds the same data.
function input(n) {
  const x = new Float32Array(n);
  let s = 2463534242;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    x[i] = s / 4294967296;
  }
  return x;
}

async function main() {
  const a = args();
  const req = createRequire(path.resolve(a.ort, 'package.json'));
  const ort = req('onnxruntime-node');
  const version = JSON.parse(fs.readFileSync(req.resolve('onnxruntime-node/package.json'), 'utf8')).version;
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  for (const w of WORKLOADS) {
    if (a.only && a.only !== w.name) continue;
    const session = await ort.InferenceSession.create(path.join(a.models, w.name + '.onnx'), opts);
    const x = new ort.Tensor('float32', input(w.shape.reduce((p, d) => p * d, 1)), w.shape);
    const feeds = { [session.inputNames[0]]: x };
    const out = session.outputNames[0];
    let sink = 0;
    const once = async () => {
      const r = await session.run(feeds);
      const y = r[out].data; // float32, NCHW, in a JS-owned buffer
      sink += y[y.length - 1];
    };
    await once();
    const runs = [];
    for (let i = 0; i < a.reps; i++) {
      const t = process.hrtime.bigint();
      await once();
      runs.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const sorted = [...runs].sort((p, q) => p - q);
    console.log(JSON.stringify({
      name: w.name, ms: sorted[Math.floor(sorted.length / 2)], runs_ms: runs, dtype: 'fp32',
      threads: a.threads, runtime: 'onnxruntime', ort_version: version, finite: Number.isFinite(sink),
    }));
    await session.release();
  }
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
