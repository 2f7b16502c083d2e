package plugin_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/podwire/podwire/agent/agenttest"
	"github.com/podwire/podwire/agent/daemon"
	"github.com/podwire/podwire/internal/plugintest"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM string
	pool    *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "podwire test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), pool: pool}
}

// issue makes a leaf certificate for 127.0.0.1 and name, for servers and
// clients, returned as a tls.Certificate and as PEM.
func (ca *testCA) issue(t *testing.T, name string) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{name}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	c, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM, keyPEM
}

type healthCase struct {
	name   string
	json   map[string]any
	secure map[string]string
	status backend.HealthStatus
	want   string
}

func checkHealthCases(t *testing.T, p *plugintest.Plugin, addr string, cases []healthCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			js := map[string]any{"agents": []string{addr}}
			for k, v := range tc.json {
				js[k] = v
			}
			ds := plugintest.DataSource{UID: "ds-" + strings.ReplaceAll(tc.name, " ", "-"), ID: int64(100 + i), JSONData: js, Secure: tc.secure}
			h, err := p.CheckHealth(ctxT(t), ds.PluginContext())
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tc.status || !strings.Contains(h.Message, tc.want) {
				t.Errorf("health %v %q, want %v containing %q", h.Status, h.Message, tc.status, tc.want)
			}
		})
	}
}

func TestAgentRequiringToken(t *testing.T) {
	agenttest.RequireRoot(t)
	n := startNode(t, "node-t", daemon.Options{Token: "t0ken-for-agents"})
	p := plugintest.Start(t, plugintest.Options{})
	checkHealthCases(t, p, n.agent.Addr(), []healthCase{
		{"right token", nil, map[string]string{"token": "t0ken-for-agents"}, backend.HealthStatusOk, "1 of 1 agents answer: node-t"},
		{"no token", nil, nil, backend.HealthStatusError, "the agent refused the token (missing bearer token"},
		{"wrong token", nil, map[string]string{"token": "nope"}, backend.HealthStatusError, "the agent refused the token (invalid bearer token)"},
	})
	if strings.Contains(p.Logs(), "t0ken-for-agents") {
		t.Error("the plugin logged the token")
	}
}

func TestAgentServingTLS(t *testing.T) {
	agenttest.RequireRoot(t)
	ca := newCA(t)
	serverCert, _, _ := ca.issue(t, "agent.podwire.test")
	_, clientCert, clientKey := ca.issue(t, "grafana.podwire.test")
	n := startNode(t, "node-tls", daemon.Options{TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}})
	m := startNode(t, "node-mtls", daemon.Options{TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.pool,
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}})
	p := plugintest.Start(t, plugintest.Options{})
	other := newCA(t)

	checkHealthCases(t, p, n.agent.Addr(), []healthCase{
		{"CA", map[string]any{"tls": true}, map[string]string{"tlsCACert": ca.certPEM}, backend.HealthStatusOk, "1 of 1 agents answer: node-tls"},
		{"server name", map[string]any{"tls": true, "tlsServerName": "agent.podwire.test"}, map[string]string{"tlsCACert": ca.certPEM}, backend.HealthStatusOk, "1 of 1"},
		{"skip verify", map[string]any{"tlsSkipVerify": true}, nil, backend.HealthStatusOk, "1 of 1"},
		{"plaintext to a TLS agent", nil, nil, backend.HealthStatusError, "TLS mismatch: the agent did not answer plaintext HTTP/2; it probably serves TLS"},
		{"unknown authority", map[string]any{"tls": true}, map[string]string{"tlsCACert": other.certPEM}, backend.HealthStatusError, "signed by an unknown authority; set tlsCACert"},
		{"wrong server name", map[string]any{"tls": true, "tlsServerName": "elsewhere.podwire.test"}, map[string]string{"tlsCACert": ca.certPEM}, backend.HealthStatusError, "set tlsServerName"},
	})
	checkHealthCases(t, p, m.agent.Addr(), []healthCase{
		{"client certificate", map[string]any{"tls": true, "tlsAuth": true}, map[string]string{"tlsCACert": ca.certPEM, "tlsClientCert": clientCert, "tlsClientKey": clientKey}, backend.HealthStatusOk, "1 of 1 agents answer: node-mtls"},
		{"no client certificate", map[string]any{"tls": true}, map[string]string{"tlsCACert": ca.certPEM}, backend.HealthStatusError, "wants a client certificate"},
	})

	// Data flows over TLS too.
	ds := plugintest.DataSource{UID: "tls-query", JSONData: map[string]any{"agents": []string{n.agent.Addr(), m.agent.Addr()}, "tls": true, "tlsAuth": true},
		Secure: map[string]string{"tlsCACert": ca.certPEM, "tlsClientCert": clientCert, "tlsClientKey": clientKey}}
	r := queryOne(t, p, ds.PluginContext(), q("A", map[string]any{"queryType": "traffic"}))
	if r.Error != nil || noticeTexts(r.Frames) != "" {
		t.Errorf("traffic over TLS: %v %s", r.Error, noticeTexts(r.Frames))
	}
	if strings.Contains(p.Logs(), "PRIVATE KEY") {
		t.Error("the plugin logged a key")
	}
}
