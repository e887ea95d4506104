import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig("@balora/regularizers", new URL("./", import.meta.url));
