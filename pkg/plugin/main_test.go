package plugin_test

import (
	"os"
	"testing"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/internal/plugintest"
)

func TestMain(m *testing.M) {
	agenttest.PeerMain()
	code := m.Run()
	plugintest.Cleanup()
	os.Exit(code)
}
