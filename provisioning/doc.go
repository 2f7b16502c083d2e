// Package provisioning holds what a Grafana reads at start to have the
// Podwire data source and its dashboards: datasources/ and dashboards/.
// It has no Go code; its tests run every provisioned query through the
// real plugin backend and check docker-compose.yaml's mounts.
package provisioning
