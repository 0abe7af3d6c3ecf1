"""What a run leaves behind besides weights: metrics.json, the manifest, TensorBoard
dashboards and figures, and the summary of a sweep."""
