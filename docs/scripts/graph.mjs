// The package import graph for the docs site, read from each package.json's @balora/* dependencies (so it
// cannot drift from what the packages import), drawn as a static inline SVG plus a table: no network, no script.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const PACKAGES = ["tensor", "safetensors", "lora", "regularizers", "models", "ba-lora"];

/** name → the @balora packages it depends on (dependencies and peerDependencies). */
export function dependencies(root) {
  const deps = {};
  for (const name of PACKAGES) {
    const pkg = JSON.parse(readFileSync(join(root, "packages", name, "package.json"), "utf8"));
    const all = { ...pkg.dependencies, ...pkg.peerDependencies };
    deps[name] = Object.keys(all)
      .filter((d) => d.startsWith("@balora/"))
      .map((d) => d.slice("@balora/".length))
      .filter((d) => PACKAGES.includes(d));
  }
  return deps;
}

/** Layer = the longest dependency chain below a package (0: depends on nothing). */
function layers(deps) {
  const memo = {};
  const depth = (n, seen = new Set()) => {
    if (memo[n] !== undefined) return memo[n];
    if (seen.has(n)) throw new Error(`package dependency cycle through @balora/${n}`);
    seen.add(n);
    memo[n] = deps[n].length ? 1 + Math.max(...deps[n].map((d) => depth(d, seen))) : 0;
    return memo[n];
  };
  return Object.fromEntries(PACKAGES.map((n) => [n, depth(n)]));
}

function svg(deps) {
  const layer = layers(deps);
  const maxLayer = Math.max(...Object.values(layer));
  const [W, H, gapX, gapY] = [190, 40, 30, 60];
  const rows = Array.from({ length: maxLayer + 1 }, (_, l) => PACKAGES.filter((n) => layer[n] === l));
  const width = Math.max(...rows.map((r) => r.length)) * (W + gapX) + gapX;
  const height = rows.length * (H + gapY) + gapY / 2;
  const pos = {};
  rows.forEach((row, l) => {
    const y = height - (l + 1) * (H + gapY) + gapY / 2;
    const offset = (width - row.length * (W + gapX) + gapX) / 2;
    row.forEach((n, i) => (pos[n] = { x: offset + i * (W + gapX), y }));
  });
  const edges = PACKAGES.flatMap((n) =>
    deps[n].map((d) => {
      const [a, b] = [pos[n], pos[d]];
      const [x1, y1, x2, y2] = [a.x + W / 2, a.y + H, b.x + W / 2, b.y];
      // An edge that skips a layer bends around the boxes between (to the side it comes from; right when straight).
      const span = layer[n] - layer[d];
      const bend = span > 1 ? (x1 < width / 2 ? -1 : 1) * (W + gapX) * (span - 1) : 0;
      const [cx, cy] = [(x1 + x2) / 2 + bend, (y1 + y2) / 2];
      return `<path d="M ${x1} ${y1} Q ${cx} ${cy} ${x2} ${y2}" fill="none" stroke="#888" marker-end="url(#arrow)"/>`;
    }),
  );
  const boxes = PACKAGES.map((n) => {
    const { x, y } = pos[n];
    return (
      `<a href="./${n}.html"><rect x="${x}" y="${y}" width="${W}" height="${H}" rx="6" fill="#f4f4f8" stroke="#556"/>` +
      `<text x="${x + W / 2}" y="${y + H / 2 + 5}" text-anchor="middle" font-family="monospace" font-size="14" fill="#223">` +
      `@balora/${n}</text></a>`
    );
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img"`,
    ` aria-label="@balora package import graph">`,
    `<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">`,
    `<path d="M 0 0 L 10 5 L 0 10 z" fill="#888"/></marker></defs>`,
    ...edges,
    ...boxes,
    "</svg>",
  ].join("");
}

/** The packages overview page: what each is, the graph, and who imports whom. */
export function importGraph(root) {
  const deps = dependencies(root);
  const usedBy = Object.fromEntries(PACKAGES.map((n) => [n, PACKAGES.filter((m) => deps[m].includes(n))]));
  const describe = (n) => JSON.parse(readFileSync(join(root, "packages", n, "package.json"), "utf8")).description ?? "";
  const list = (xs) => (xs.length ? xs.map((x) => `[\`${x}\`](./${x}.md)`).join(", ") : "—");
  return [
    "# Packages",
    "",
    "Six packages that compose; each installs alone. Arrows point from a package to what it imports",
    "(its `@balora/*` `dependencies` and `peerDependencies`, read from the package.json files when this page is built).",
    "`@balora/tensor` is a peer dependency wherever a user must share one engine instance.",
    "",
    `<div class="balora-graph">${svg(deps)}</div>`,
    "",
    "| package | what | imports | imported by |",
    "|---|---|---|---|",
    ...PACKAGES.map((n) => `| [\`@balora/${n}\`](./${n}.md) | ${describe(n)} | ${list(deps[n])} | ${list(usedBy[n])} |`),
    "",
    "Inside `@balora/tensor` the module graph is in [architecture](../architecture.md).",
    "",
  ].join("\n");
}
