import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig("@balora/ba-lora", new URL("./", import.meta.url));
