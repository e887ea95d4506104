// The regularizer registry: built-ins in a static table (kept by bundlers that drop import-time code)
// and plugins that a third-party package registers on import; `loadRegularizerPlugin` imports one.
import { ArgumentError } from "@balora/tensor";
import { BUILT_IN_REGULARIZERS } from "./builtins.js";
import type { Regularizer } from "./types.js";

// One plugin table per process, even when two copies of this package are installed (a plugin may
// resolve its own copy): it lives on globalThis under a registered symbol.
const KEY = Symbol.for("balora.regularizers.plugins");
type Store = Map<string, Regularizer>;
const plugins = (): Store => {
  const g = globalThis as { [KEY]?: Store };
  g[KEY] ??= new Map();
  return g[KEY];
};

const NAME = /^[a-z][a-z0-9_-]*$/;

/**
 * Registers a plugin regularizer under its name; registering a name again replaces that plugin.
 * Built-in names (consistency, diversity, svd) cannot be replaced.
 */
export function registerRegularizer<O extends Record<string, unknown>>(r: Regularizer<O>): void {
  if (!r || typeof r !== "object" || typeof r.loss !== "function")
    throw new ArgumentError("registerRegularizer: expected an object with name, needsTeacher, defaults and loss(ctx, options)");
  if (typeof r.name !== "string" || !NAME.test(r.name))
    throw new ArgumentError(`registerRegularizer: name ${JSON.stringify(r.name)} must be lowercase letters, digits, "-" and "_"`);
  if (Object.hasOwn(BUILT_IN_REGULARIZERS, r.name))
    throw new ArgumentError(
      `registerRegularizer: "${r.name}" is a built-in regularizer and cannot be replaced; register yours under another name`,
    );
  if (typeof r.needsTeacher !== "boolean") throw new ArgumentError(`registerRegularizer: "${r.name}".needsTeacher must be a boolean`);
  if (!r.defaults || typeof r.defaults !== "object") throw new ArgumentError(`registerRegularizer: "${r.name}".defaults must be an object`);
  plugins().set(r.name, r as unknown as Regularizer);
}

export function getRegularizer(name: string): Regularizer {
  const r = Object.hasOwn(BUILT_IN_REGULARIZERS, name) ? BUILT_IN_REGULARIZERS[name] : plugins().get(name);
  if (!r)
    throw new ArgumentError(
      `regularizer "${name}" is not registered (registered: ${registeredRegularizers().join(", ")}); load the package that provides it`,
    );
  return r;
}

/** Built-in names first, then plugins in registration order. */
export const registeredRegularizers = (): string[] => [...Object.keys(BUILT_IN_REGULARIZERS), ...plugins().keys()];

/** What each plugin specifier registered, so loading it twice (ESM caches modules) reports the same names. */
const loaded = new Map<string, string[]>();

/**
 * Imports a plugin package (an ESM specifier or URL) whose import registers regularizers, and returns
 * the names it registered. Throws when the import fails or registered nothing. `importer` resolves
 * relative to the caller: pass `(s) => import(s)` from the importing module if the default (this
 * module's `import()`) does not see the package.
 */
export async function loadRegularizerPlugin(
  specifier: string,
  importer: (s: string) => Promise<unknown> = (s) => import(s),
): Promise<string[]> {
  if (typeof specifier !== "string" || specifier === "") throw new ArgumentError("plugin: expected a package name or URL");
  const known = loaded.get(specifier);
  if (known) return known;
  const before = new Set(plugins().keys());
  const replacedBefore = new Map([...plugins()].map(([k, v]) => [k, v]));
  try {
    await importer(specifier);
  } catch (e) {
    throw new ArgumentError(
      `plugin "${specifier}": could not be imported (${(e as Error).message.split("\n")[0]}); install it next to balora`,
    );
  }
  const names = [...plugins().keys()].filter((n) => !before.has(n) || plugins().get(n) !== replacedBefore.get(n));
  if (names.length === 0)
    throw new ArgumentError(
      `plugin "${specifier}": registered no regularizer on import (it must call registerRegularizer from @balora/regularizers)`,
    );
  loaded.set(specifier, names);
  return names;
}
