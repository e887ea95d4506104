import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig("@balora/tensor", new URL("./", import.meta.url));
