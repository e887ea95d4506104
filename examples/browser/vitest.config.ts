// The example's tests: the shared settings (forks, lavapipe-sized timeouts); the browser test builds the
// site, so it gets a longer budget of its own.
import { packageTestConfig } from "../../vitest.shared.ts";

export default packageTestConfig(null, new URL("./", import.meta.url));
