// Which modules an adapter targets, with peft's rules (check_target_module_exists): exclusions
// first; a regex string full-matches the path; a list matches exact paths or ".<suffix>"; then
// layers_to_transform filters by the first numbered segment (or the one after layers_pattern).
import { type LoraConfig, pyRegex } from "./config.js";

const fullMatch = (pattern: string, key: string): boolean => new RegExp(`^(?:${pyRegex(pattern)})$`).test(key);

function listMatch(list: string[], key: string): boolean {
  return list.includes(key) || list.some((t) => key.endsWith(`.${t}`));
}

function layerIndex(c: LoraConfig, key: string): number | null {
  const patterns = c.layers_pattern === null ? [] : typeof c.layers_pattern === "string" ? [c.layers_pattern] : c.layers_pattern;
  const res = patterns.length === 0 ? [/^.*?\.[^.]*\.(\d+)\./] : patterns.map((p) => new RegExp(`^(?:.*?\\.)?${pyRegex(p)}\\.(\\d+)\\.`));
  for (const re of res) {
    const m = re.exec(key);
    if (m) return Number(m[1]);
  }
  return null;
}

/** peft's check_target_module_exists for a module path, given explicit targets (not "all-linear"). */
export function isTarget(c: LoraConfig, targets: string[] | string, key: string): boolean {
  const ex = c.exclude_modules;
  if (ex && (typeof ex === "string" ? fullMatch(ex, key) : listMatch(ex, key))) return false;
  if (typeof targets === "string") return fullMatch(targets, key);
  if (targets.includes(key)) return true;
  let found = targets.some((t) => key.endsWith(`.${t}`));
  const lt = c.layers_to_transform;
  const usingLayers = lt !== null && (Array.isArray(lt) ? lt.length > 0 : true);
  if (usingLayers && found) {
    const idx = layerIndex(c, key);
    found = idx !== null && (Array.isArray(lt) ? lt.includes(idx) : idx === lt);
  }
  return found;
}
