import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig(null, new URL("./", import.meta.url));
