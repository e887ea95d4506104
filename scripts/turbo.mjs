// Runs the workspace's turbo through the pinned pnpm with telemetry off, forwarding arguments.
import { pnpm } from "./lib/pnpm.mjs";

process.env.TURBO_TELEMETRY_DISABLED = "1";
process.env.DO_NOT_TRACK = "1";
pnpm(["exec", "turbo", ...process.argv.slice(2)]);
