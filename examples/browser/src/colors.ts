// One colour per curve (the report's palette, d3 category10), shared by the page and its render test.
export const SERIES_COLORS: Record<string, string> = {
  loss: "#1f77b4",
  task_loss: "#ff7f0e",
  consistency: "#2ca02c",
  diversity: "#d62728",
  svd: "#8c564b",
};
/** For a plugin's term. */
export const FALLBACK_COLORS = ["#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
