// Command gpx_podwire is the Podwire data source's backend: Grafana starts
// it and talks to it over the plugin protocol.
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/podwire/podwire/pkg/plugin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	plugin.Version = version
	if err := datasource.Manage("podwire-traffic-datasource", plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("serving the plugin", "err", err)
		os.Exit(1)
	}
}
