package daemon_test

import (
	"os"
	"testing"

	"github.com/podwire/podwire/agent/agenttest"
)

func TestMain(m *testing.M) {
	agenttest.PeerMain()
	os.Exit(m.Run())
}
