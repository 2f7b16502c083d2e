package podwirev1

// Trailer metadata of a ServiceMap, Metrics or Values answer that hit one
// of the agent's bounds: TruncatedTrailer lists what was full ("nodes",
// "edges", "series", "points", "values"), comma-separated;
// TruncatedEntriesTrailer is how many matched entries the answer leaves
// out. They live beside the API so that clients need not import the agent.
const (
	TruncatedTrailer        = "podwire-truncated"
	TruncatedEntriesTrailer = "podwire-truncated-entries"
)
