// Idempotent set-up behind `npm test`, `npm run demo` and `npm run bench`: pinned pnpm,
// dependencies from the lockfile, built packages, Chromium for the report's render test, and a WebGPU
// adapter (Mesa lavapipe from bookworm-backports if none).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { pnpm, pnpmCommand, pnpmVersion, repoRoot } from "./lib/pnpm.mjs";

const quiet = process.argv.includes("--quiet");
const log = (msg) => {
  if (!quiet) console.error(`[setup] ${msg}`);
};

const major = Number(process.versions.node.split(".")[0]);
if (major < 20) fail(`Node ${process.versions.node} is too old: balora needs Node >= 20 (https://nodejs.org).`);

function fail(msg) {
  console.error(`balora setup: ${msg}`);
  process.exit(1);
}

// 1. Dependencies. pnpm itself is quick when node_modules already matches the lockfile.
pnpmCommand();
log(`pnpm ${pnpmVersion}: installing dependencies from pnpm-lock.yaml`);
pnpm([
  "install",
  "--frozen-lockfile",
  "--prefer-offline",
  ...(quiet ? ["--loglevel=error"] : ["--loglevel=info", "--reporter=append-only"]),
]);

// 2. Build the packages (turbo caches it), so the `balora` bin works right after set-up.
log("building packages");
process.env.TURBO_TELEMETRY_DISABLED = "1";
pnpm(["exec", "turbo", "run", "build", "--output-logs=errors-only"], { stdio: ["ignore", quiet ? "ignore" : "inherit", "inherit"] });

// 3. Chromium for the report's render test (packages/ba-lora/test/report-render.test.ts): Debian's
// package when missing and we are root on Debian; elsewhere that test says why and skips.
const CHROMIUM = "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) {
  const canApt = existsSync("/etc/debian_version") && process.getuid?.() === 0;
  if (canApt) {
    log("installing Debian's chromium (headless, for the HTML report's render test)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const stdio = quiet ? "ignore" : "inherit";
    const install = () => spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio, env }).status === 0;
    if (!install()) {
      spawnSync("apt-get", ["update"], { stdio, env });
      if (!install()) log("could not install chromium (apt-get install chromium failed); the report render test will skip");
    }
  } else log(`no ${CHROMIUM}: the HTML report's render test will skip (install Chromium, e.g. apt-get install chromium)`);
}

// 4. A WebGPU adapter.
function probe() {
  const r = spawnSync(process.execPath, ["scripts/lib/probe-adapter.mjs"], { cwd: repoRoot, encoding: "utf8", timeout: 120_000 });
  const line = (r.stdout ?? "").trim().split("\n").pop();
  try {
    return JSON.parse(line).adapter;
  } catch {
    return null;
  }
}

if (process.env.BALORA_BACKEND === "cpu") {
  log("BALORA_BACKEND=cpu: no WebGPU adapter needed (every logic test runs on the float64 CPU oracle)");
  process.exit(0);
}
let adapter = probe();
if (!adapter) {
  const debian = existsSync("/etc/debian_version");
  const codename = debian ? (readFileSync("/etc/os-release", "utf8").match(/VERSION_CODENAME=(\w+)/)?.[1] ?? "") : "";
  const isRoot = process.getuid?.() === 0;
  const howTo =
    codename === "bookworm"
      ? "add the bookworm-backports suite to apt sources, then: apt-get update && " +
        "apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1"
      : debian
        ? "apt-get install -y mesa-vulkan-drivers libvulkan1 (Mesa >= 24 is needed for Dawn)"
        : "install a Vulkan driver: a GPU driver with Vulkan support, or Mesa >= 24 lavapipe " +
          "(package mesa-vulkan-drivers / vulkan-swrast) plus the Vulkan loader (libvulkan1 / vulkan-loader)";
  if (!(debian && isRoot)) fail(`no WebGPU adapter found. To fix, as root ${howTo}`);
  log("no WebGPU adapter: installing Mesa lavapipe (software Vulkan)");
  const apt = (args) => {
    const r = spawnSync("apt-get", args, {
      stdio: quiet ? "ignore" : "inherit",
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
    if (r.status !== 0) fail(`'apt-get ${args.join(" ")}' failed. To fix, ${howTo}`);
  };
  const installArgs = ["install", "-y", "--no-install-recommends"];
  if (codename === "bookworm") {
    const src = "/etc/apt/sources.list.d/balora-bookworm-backports.sources";
    if (!existsSync(src)) {
      writeFileSync(
        src,
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\n" +
          "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
      );
    }
    apt(["update"]);
    apt([...installArgs, "-t", "bookworm-backports", "mesa-vulkan-drivers", "libvulkan1"]);
  } else {
    apt(["update"]);
    apt([...installArgs, "mesa-vulkan-drivers", "libvulkan1"]);
  }
  adapter = probe();
  if (!adapter)
    fail(`still no WebGPU adapter after installing Mesa. To fix, ${howTo}; then check with: node scripts/lib/probe-adapter.mjs`);
}
log(`WebGPU adapter: ${adapter}`);
