package plugin_test

import (
	"testing"

	"github.com/podwire/podwire/internal/plugintest"
)

func TestMain(m *testing.M) { plugintest.Main(m) }
