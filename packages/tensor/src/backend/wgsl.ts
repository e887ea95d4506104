// The binding conventions shared by the WebGPU backend and every kernel: the params struct at
// binding 0 (u32, then i32, then f32 fields), 1-D grids split over x/y, and device-side validation.
import type { Params } from "./backend.js";

/** Largest workgroup count per grid dimension (WebGPU's default limit). */
export const MAX_WORKGROUPS = 65535;

/** The WGSL struct for a dispatch's params, declared as `p` at binding 0. */
export function paramsDecl(params: Params | undefined): string {
  const fields: string[] = [];
  for (const [kind, ty] of [
    ["u", "u32"],
    ["i", "i32"],
    ["f", "f32"],
  ] as const) {
    for (const name of Object.keys(params?.[kind] ?? {})) fields.push(`${name}: ${ty}`);
  }
  if (fields.length === 0) fields.push("_unused: u32");
  return `struct Params { ${fields.join(", ")} }\n@group(0) @binding(0) var<uniform> p: Params;\n`;
}

/** 1-D workgroup grid split over x and y (see LINEAR_WG). */
export function grid1d(workgroups: number): [number, number, number] {
  if (workgroups <= MAX_WORKGROUPS) return [Math.max(1, workgroups), 1, 1];
  const y = Math.ceil(workgroups / MAX_WORKGROUPS);
  return [Math.ceil(workgroups / y), y, 1];
}

/** WGSL: linear workgroup index for a grid from `grid1d` (needs builtins `wid` and `nwg`). */
export const LINEAR_WG = "(wid.x + wid.y * nwg.x)";

/** WGSL for kernels that validate input: bind the `validation()` storage as `err`, call report(code, value). */
export const reportWgsl = (binding: number) => `@group(0) @binding(${binding}) var<storage, read_write> err: array<atomic<i32>>;
fn report(code: u32, value: i32) { atomicMax(&err[0], i32(code)); atomicStore(&err[1], value); }
`;

/** WGSL with every `enable …;` directive moved to the top (helper snippets may bring their own). */
export function hoistDirectives(code: string): string {
  const directives = new Set<string>();
  const rest = code.replace(/^\s*enable\s+[\w\s,]+;\s*$/gm, (m) => {
    directives.add(m.trim());
    return "";
  });
  return directives.size ? `${[...directives].join("\n")}\n${rest}` : code;
}
