import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig("@balora/safetensors", new URL("./", import.meta.url));
