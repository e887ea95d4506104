// `balora report RUN_DIR...`: one self-contained HTML page with the curves of one or several training
// runs overlaid (from each run's metrics.jsonl and training_config.json), written atomically.
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { renderReport } from "../report/html.js";
import { type ReportRun, parseConfig, parseMetrics } from "../report/metrics.js";
import { CliError, type FlagSpecs, kebab, parse, UsageError } from "./args.js";
import { requireDir, requireFile } from "./inputs.js";
import type { Command } from "./main.js";
import { OVERWRITE_FLAG, planOutput, writeTextOutput } from "./output.js";
import { progress } from "./progress.js";

const FLAGS = {
  out: { type: "string", value: "FILE.html", default: "report.html", help: "the HTML file to write" },
  title: { type: "string", value: "TEXT", help: "the page title; none: 'balora report: ' and the run names" },
  overwrite: OVERWRITE_FLAG,
  quiet: { type: "boolean", help: "no notes on stderr" },
} satisfies FlagSpecs;

/** Splits `argv` into positionals and flags (a value flag's value is not a positional). */
export function splitPositionals(argv: string[], spec: FlagSpecs): { positionals: string[]; flags: string[] } {
  const valueFlags = new Set(
    Object.entries(spec)
      .filter(([, s]) => s.type !== "boolean")
      .map(([k]) => `--${kebab(k)}`),
  );
  const positionals: string[] = [];
  const flags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") positionals.push(a);
    else {
      flags.push(a);
      if (valueFlags.has(a) && i + 1 < argv.length) flags.push(argv[++i]);
    }
  }
  return { positionals, flags };
}

/** Names runs by their directory; the same base name twice gets its parent directory in front. */
function runNames(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(resolve(d)));
  return dirs.map((d, i) => (base.filter((b) => b === base[i]).length > 1 ? join(basename(dirname(resolve(d))), base[i]) : base[i]));
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Reads a run directory: metrics.jsonl (required) and training_config.json (optional, noted when missing). */
export async function readRun(dir: string, name: string, note: (line: string) => void): Promise<ReportRun> {
  await requireDir("RUN_DIR", dir, "a training output directory (metrics.jsonl, training_config.json)");
  const metricsFile = join(dir, "metrics.jsonl");
  if (!(await exists(metricsFile))) throw new CliError(`${metricsFile}: not found; is ${dir} the --out directory of balora train?`);
  await requireFile("RUN_DIR", metricsFile, "metrics.jsonl");
  const { metrics, warnings } = parseMetrics(await readFile(metricsFile, "utf8"), metricsFile);
  for (const w of warnings) note(`balora report: warning: ${w}`);
  if (metrics.length === 0) note(`balora report: warning: ${metricsFile} has no steps yet`);
  const configFile = join(dir, "training_config.json");
  let config: Record<string, unknown> = {};
  if (await exists(configFile)) config = parseConfig(await readFile(configFile, "utf8"), configFile);
  else note(`balora report: warning: ${configFile} not found; the settings table is left empty for ${name}`);
  return { name, config, metrics };
}

export const reportCommand: Command = {
  summary: "write an HTML report of one or several training runs (curves overlaid)",
  usage: "balora report RUN_DIR... [--out FILE.html] [--title TEXT] [--overwrite]",
  flags: FLAGS,
  details:
    "Each RUN_DIR is a balora train --out directory: its metrics.jsonl (one line per optimizer step) and training_config.json.\n" +
    "The page needs no network and no script: curves are inline SVG (loss, each regularizer, the lambdas, learning rate,\n" +
    "grad norm, throughput, every eval_* metric), then the final and eval metrics and the settings side by side.",
  async run(argv) {
    const { positionals, flags } = splitPositionals(argv, FLAGS);
    const a = parse(flags, FLAGS);
    if (positionals.length === 0) throw new UsageError("give at least one run directory (the --out of balora train)");
    const names = runNames(positionals);
    const inputs = positionals.flatMap((d) => [
      { flag: "RUN_DIR", path: join(d, "metrics.jsonl") },
      { flag: "RUN_DIR", path: join(d, "training_config.json") },
    ]);
    const runs: ReportRun[] = [];
    for (const [i, dir] of positionals.entries()) runs.push(await readRun(dir, names[i], progress));
    const out = await planOutput({ flag: "--out", path: a.out!, kind: "file", example: "report.html" }, { overwrite: a.overwrite, inputs });
    await writeTextOutput(out, renderReport(runs, a.title ? { title: a.title } : {}));
    console.log(`wrote the report of ${runs.length} run(s) to ${a.out}`);
  },
};
