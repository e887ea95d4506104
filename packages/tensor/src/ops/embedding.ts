// Embedding gather (rows of an f32/f16/bf16 table by i32 ids) with a scatter-add backward. Tables
// larger than one storage binding run in row windows; out-of-range ids throw IndexError at readback.
import { bytesPerElement } from "../dtype.js";
import { DTypeError, fmtShape, IndexError, ShapeError } from "../errors.js";
import { record } from "../graph.js";
import { emptyTensor, sameBackend, type Tensor } from "../tensor.js";
import { copyToContiguous, fill } from "./copy.js";
import {
  bindSpan,
  cpuData,
  cpuValues,
  groups,
  inputDecl,
  isGpu,
  LINEAR_WG,
  MAIN,
  outputDecl,
  paramsDecl,
  reportWgsl,
  requireFloat,
  rowRuns,
} from "./kernel.js";

const WG = 256;

function checkIds(op: string, ids: Tensor, V: number, table: Tensor): void {
  if (ids.dtype !== "i32") throw new DTypeError(`${op}: ids must be i32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
  if (ids.backend.kind === "cpu") {
    for (const v of cpuValues(ids))
      if (v < 0 || v >= V)
        throw new IndexError(`${op}: id ${v} is out of range [0, ${V}) for table ${fmtShape(table.shape)} (ids ${fmtShape(ids.shape)})`);
  }
}

// table [V, H] contiguous, ids [...] i32 contiguous -> [...ids, H]; one dispatch per window of table rows.
function gatherRaw(table: Tensor, ids: Tensor): Tensor {
  const [V, H] = table.shape;
  const out = emptyTensor(table.backend, [...ids.shape, H]);
  const n = out.size;
  const b = table.backend;
  if (n === 0) return out;
  if (isGpu(b)) {
    const { code, err } = b.validation(
      `embedding: an id is out of range [0, ${V}) for table ${fmtShape(table.shape)} (ids ${fmtShape(ids.shape)})`,
    );
    for (const [v0, v1] of rowRuns(b, V, H * bytesPerElement(table.dtype), [table.storage])) {
      const ts = bindSpan(b, table.storage, table.offset + v0 * H, (v1 - v0) * H);
      const params = { u: { n, H, V, v0, v1, to: ts.base, io: ids.offset, code } };
      b.dispatch({
        key: `embedding:${table.dtype}`,
        params,
        inputs: [ts.binding, ids.storage],
        outputs: [out.storage, err],
        grid: groups(n, WG),
        wgsl: () => `${paramsDecl(params)}${inputDecl(1, "tab", table.dtype)}${inputDecl(2, "ids", "i32")}${outputDecl(3, "out")}
${reportWgsl(4)}
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let id = ids[p.io + i / p.H];
  if (id < 0 || u32(id) >= p.V) { report(p.code, id); out[i] = 0.0; return; }
  if (u32(id) < p.v0 || u32(id) >= p.v1) { return; }
  out[i] = load_tab(p.to + (u32(id) - p.v0) * p.H + i % p.H);
}`,
      });
    }
    return out;
  }
  const tv = cpuValues(table);
  const iv = cpuValues(ids);
  const o = cpuData(out);
  for (let r = 0; r < iv.length; r++) for (let h = 0; h < H; h++) o[r * H + h] = tv[iv[r] * H + h];
  return out;
}

/**
 * dTable[ids[r], :] += g[r, :] with float atomics (compare-exchange) on the GPU: the order of the
 * additions, and so the last bits of rows hit by repeated ids, vary between runs (see the README).
 */
function scatterAddRaw(g: Tensor, ids: Tensor, V: number, H: number): Tensor {
  const dt = fill(g.backend, [V, H], 0);
  const n = g.size;
  const b = g.backend;
  if (n === 0) return dt;
  if (isGpu(b)) {
    for (const [v0, v1] of rowRuns(b, V, H * 4, [dt.storage])) {
      const ds = bindSpan(b, dt.storage, v0 * H, (v1 - v0) * H);
      const params = { u: { n, H, go: g.offset, io: ids.offset, v0, v1, dto: ds.base } };
      b.dispatch({
        key: "embedding_grad",
        params,
        inputs: [g.storage, ids.storage],
        outputs: [ds.binding],
        grid: groups(n, WG),
        wgsl: () => `${paramsDecl(params)}${inputDecl(1, "g", "f32")}${inputDecl(2, "ids", "i32")}
@group(0) @binding(3) var<storage, read_write> dt: array<atomic<u32>>;
${MAIN(WG)} {
  let i = ${LINEAR_WG} * ${WG}u + lid.x;
  if (i >= p.n) { return; }
  let id = ids[p.io + i / p.H];
  if (id < 0 || u32(id) < p.v0 || u32(id) >= p.v1) { return; }
  let idx = p.dto + (u32(id) - p.v0) * p.H + i % p.H;
  let v = g[p.go + i];
  var old = atomicLoad(&dt[idx]);
  loop {
    let r = atomicCompareExchangeWeak(&dt[idx], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`,
      });
    }
    return dt;
  }
  const gv = cpuValues(g);
  const iv = cpuValues(ids);
  const o = cpuData(dt);
  for (let r = 0; r < iv.length; r++) for (let h = 0; h < H; h++) o[iv[r] * H + h] += gv[r * H + h];
  return dt;
}

/** Rows of `table` [V, H] for i32 `ids` of any shape: returns [...ids.shape, H]. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  sameBackend("embedding", table, ids);
  requireFloat("embedding", table);
  if (table.rank !== 2) throw new ShapeError(`embedding: table must be [V, H], got ${fmtShape(table.shape)}`);
  const [V, H] = table.shape;
  checkIds("embedding", ids, V, table);
  const flat = (t: Tensor) => (t.isContiguous ? t.viewAs(t.shape) : copyToContiguous(t));
  const tc = flat(table);
  const ic = flat(ids);
  const y = gatherRaw(tc, ic);
  tc.dispose();
  return record(
    y,
    "embedding",
    [table],
    (g, _needs, [is]) => {
      const gc = flat(g);
      const dt = scatterAddRaw(gc, is, V, H);
      gc.dispose();
      return [dt];
    },
    [ic],
  );
}
