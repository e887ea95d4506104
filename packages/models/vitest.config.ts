import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig("@balora/models", new URL("./", import.meta.url));
