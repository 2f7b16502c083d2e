package frames

import (
	"flag"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden keeps one golden response per query type, built from the
// fixtures: the exact frames Grafana receives. Run with -update after a
// deliberate change and review the diff.
func TestGolden(t *testing.T) {
	nodes, edges := ServiceMap(MergeServiceMap(sampleMaps()), "workload", t0.Add(-time.Minute), t0, testLinks)
	for _, tc := range []struct {
		name   string
		frames data.Frames
	}{
		{"traffic", data.Frames{Traffic(MergeEntries([][]*podwirev1.Entry{sampleEntries()}, 1000), testLinks)}},
		{"logs", data.Frames{Logs(sampleEntries(), testLinks)}},
		{"serviceMap", data.Frames{nodes, edges}},
		{"metrics", Metrics(MergeMetrics(sampleMetrics()), "workload", time.Minute, t0, t0.Add(10*time.Minute))},
		{"entry", Entry(sampleEntries()[0])},
		{"entry-binary", Entry(sampleEntries()[2])},
		{"values", data.Frames{Values([]string{"data", "kube-system", "shop"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			experimental.CheckGoldenJSONResponse(t, "testdata", tc.name, &backend.DataResponse{Frames: tc.frames}, *update)
		})
	}
}
