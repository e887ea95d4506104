// `npm run bench`: writes a ~1.2 GB LLaMA-shaped checkpoint in ~256 MB shards to os.tmpdir(), then
// streams every tensor back in a fresh process and reports peak RSS growth against the largest shard.
import { execFileSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { openCheckpoint, saveCheckpoint } from "../dist/index.js";

const MB = 1024 * 1024;
const SHARD = 256 * MB;
const [hidden, intermediate, vocab, layers] = [2048, 5632, 32000, 8];

if (process.argv[2] === "--load") await load(process.argv[3], Number(process.argv[4]));
else await writeThenLoad();

/** name -> { dtype, shape, data }: bf16 weights, f32 norms, an f32 lm_head larger than a shard. */
function llamaShapedTensors() {
  const specs = [["model.embed_tokens.weight", "BF16", [vocab, hidden]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    for (const m of ["q", "k", "v", "o"]) specs.push([`${p}.self_attn.${m}_proj.weight`, "BF16", [hidden, hidden]]);
    specs.push([`${p}.mlp.gate_proj.weight`, "BF16", [intermediate, hidden]]);
    specs.push([`${p}.mlp.up_proj.weight`, "BF16", [intermediate, hidden]]);
    specs.push([`${p}.mlp.down_proj.weight`, "BF16", [hidden, intermediate]]);
    specs.push([`${p}.input_layernorm.weight`, "F32", [hidden]]);
    specs.push([`${p}.post_attention_layernorm.weight`, "F32", [hidden]]);
  }
  specs.push(["model.norm.weight", "F32", [hidden]], ["lm_head.weight", "F32", [vocab, hidden]]);
  // Random bytes, produced only when the writer reaches each tensor.
  return new Map(
    specs.map(([name, dtype, shape]) => {
      const numel = shape.reduce((a, b) => a * b, 1);
      const data = () => randomFillSync(dtype === "BF16" ? new Uint16Array(numel) : new Float32Array(numel));
      return [name, { dtype, shape, data }];
    }),
  );
}

async function writeThenLoad() {
  const dir = await mkdtemp(join(tmpdir(), "balora-safetensors-bench-"));
  process.stderr.write(`[bench] safetensors: writing a ~1.2 GB checkpoint to ${dir}, then streaming it back in a new process\n`);
  try {
    const start = performance.now();
    const saved = await saveCheckpoint(dir, llamaShapedTensors(), { maxShardSize: SHARD });
    const seconds = (performance.now() - start) / 1000;
    const sizes = await Promise.all(saved.files.map(async (f) => (await stat(join(dir, f))).size));
    const bytes = sizes.reduce((a, b) => a + b, 0);
    console.log(
      JSON.stringify({
        bench: "safetensors-write",
        bytes,
        shards: sizes.length,
        seconds: round(seconds),
        MBps: Math.round(bytes / MB / seconds),
      }),
    );
    // Load in a new process, so memory the writer freed but the allocator kept cannot hide growth.
    const self = fileURLToPath(import.meta.url);
    process.stdout.write(execFileSync(process.execPath, [self, "--load", dir, String(Math.max(...sizes))]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Streams every tensor of the checkpoint in `dir`, sampling RSS after each one. */
async function load(dir, largestShard) {
  setFlagsFromString("--expose-gc");
  runInNewContext("gc")();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let bytes = 0;
  let checksum = 0;
  const start = performance.now();
  const checkpoint = await openCheckpoint(dir);
  for await (const t of checkpoint) {
    bytes += t.data.byteLength;
    checksum ^= Number(t.data[0]) ^ Number(t.data[t.data.length - 1]); // touch the data
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  await checkpoint.close();
  const seconds = (performance.now() - start) / 1000;
  const grown = peak - baseline;
  console.log(
    JSON.stringify({
      bench: "safetensors-load",
      bytes,
      tensors: checkpoint.names.length,
      largestShard,
      baselineRssMB: Math.round(baseline / MB),
      peakRssMB: Math.round(grown / MB),
      ratio: round(grown / largestShard, 3),
      seconds: round(seconds),
      MBps: Math.round(bytes / MB / seconds),
      checksum,
    }),
  );
}

function round(x, digits = 2) {
  return Number(x.toFixed(digits));
}
