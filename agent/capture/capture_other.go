//go:build !linux

package capture

import (
	"errors"
	"time"

	"github.com/podwire/podwire/agent/tcp"
)

// Capture is only available on Linux.
type Capture struct{}

// ErrPermission is returned by Open when the process may not load eBPF programs.
var ErrPermission = errors.New("capture needs Linux")

// Open fails: eBPF capture needs Linux.
func Open(cfg Config) (*Capture, error) { return nil, errors.New("capture needs Linux") }

func (c *Capture) Cgroup() string                                               { return "" }
func (c *Capture) Programs() []Program                                          { return nil }
func (c *Capture) Counters() map[string]uint64                                  { return nil }
func (c *Capture) Close() error                                                 { return nil }
func (c *Capture) Run(func(*tcp.Segment), func(time.Time), time.Duration) error { return nil }
