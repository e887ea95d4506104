import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig("@balora/lora", new URL("./", import.meta.url));
