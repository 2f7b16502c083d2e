package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	podwirev1 "github.com/podwire/podwire/proto/podwire/v1"
)

// dropCounters are the Status counters that say data was lost, shown in the
// health message when not zero.
var dropCounters = []string{
	"bpf_ringbuf_full", "bpf_truncated_packets", "tcp_gaps", "tcp_buffer_drops",
	"tcp_evicted", "store_evictions", "watch_dropped", "dissector_panics",
}

// agentHealth is one agent's part of the health details.
type agentHealth struct {
	Address       string            `json:"address"`
	OK            bool              `json:"ok"`
	Error         string            `json:"error,omitempty"`
	Node          string            `json:"node,omitempty"`
	Version       string            `json:"version,omitempty"`
	Kernel        string            `json:"kernel,omitempty"`
	Capture       string            `json:"capture,omitempty"`
	CgroupRoot    string            `json:"cgroupRoot,omitempty"`
	UptimeSeconds float64           `json:"uptimeSeconds,omitempty"`
	Programs      int               `json:"programs,omitempty"`
	Drops         map[string]uint64 `json:"drops,omitempty"`
	Counters      map[string]uint64 `json:"counters,omitempty"`
}

type healthDetails struct {
	Answering int           `json:"answering"`
	Total     int           `json:"total"`
	DNSName   string        `json:"dnsName,omitempty"`
	Warning   string        `json:"warning,omitempty"`
	Agents    []agentHealth `json:"agents"`
}

// CheckHealth asks every agent for its status and says how many answer,
// with their versions, nodes, capture state and loss counters.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	agents, warning, err := d.agents(ctx)
	if err != nil {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: err.Error()}, nil
	}
	answers := fanOut(ctx, agents, d.s.Timeout, "Status", func(ctx context.Context, a *agent) (*podwirev1.StatusResponse, error) {
		s, err := a.client.Status(ctx, &podwirev1.StatusRequest{})
		if err == nil {
			a.setNode(s.GetNode())
		}
		return s, err
	})
	det := healthDetails{Total: len(agents), DNSName: d.s.DNSName}
	if warning != nil {
		det.Warning = warning.Error()
	}
	var good, bad []string
	for _, a := range answers {
		h := agentHealth{Address: a.agent.addr}
		if a.err != nil {
			h.Error = a.agent.explain(a.err, d.s.Timeout)
			bad = append(bad, describe(a.agent, a.err, d.s.Timeout))
			det.Agents = append(det.Agents, h)
			continue
		}
		s := a.val
		det.Answering++
		h.OK = true
		h.Node, h.Version, h.Kernel, h.Capture, h.CgroupRoot = s.GetNode(), s.GetVersion(), s.GetKernel(), s.GetCapture(), s.GetCgroupRoot()
		h.UptimeSeconds = s.GetUptime().AsDuration().Seconds()
		h.Programs = len(s.GetPrograms())
		h.Counters = s.GetCounters()
		for _, c := range dropCounters {
			if v := s.GetCounters()[c]; v > 0 {
				if h.Drops == nil {
					h.Drops = map[string]uint64{}
				}
				h.Drops[c] = v
			}
		}
		det.Agents = append(det.Agents, h)
		good = append(good, summary(h))
	}
	js, _ := json.Marshal(det)
	res := &backend.CheckHealthResult{JSONDetails: js}
	var msg strings.Builder
	fmt.Fprintf(&msg, "%d of %d agents answer", det.Answering, det.Total)
	if len(good) > 0 {
		msg.WriteString(": " + strings.Join(good, "; "))
	}
	if len(bad) > 0 {
		msg.WriteString(". " + strings.Join(bad, ". "))
	}
	if det.Warning != "" {
		msg.WriteString(". " + det.Warning)
	}
	res.Message = msg.String()
	res.Status = backend.HealthStatusOk
	if det.Answering == 0 {
		res.Status = backend.HealthStatusError
	}
	return res, nil
}

// summary is one answering agent in the health message.
func summary(h agentHealth) string {
	var b strings.Builder
	b.WriteString(h.Node)
	if b.Len() == 0 {
		b.WriteString(h.Address)
	}
	var parts []string
	if h.Version != "" {
		parts = append(parts, "version "+h.Version)
	}
	if h.Capture != "" {
		parts = append(parts, "capture "+h.Capture)
	}
	if len(h.Drops) == 0 {
		parts = append(parts, "no drops")
	} else {
		keys := make([]string, 0, len(h.Drops))
		for k := range h.Drops {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var ds []string
		for _, k := range keys {
			ds = append(ds, fmt.Sprintf("%s=%d", k, h.Drops[k]))
		}
		parts = append(parts, "drops "+strings.Join(ds, " "))
	}
	fmt.Fprintf(&b, " at %s (%s)", h.Address, strings.Join(parts, ", "))
	return b.String()
}
