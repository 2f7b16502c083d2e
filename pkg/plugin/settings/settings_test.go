package settings

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// testCert returns a self-signed certificate and its key as PEM.
func testCert(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func TestParseErrors(t *testing.T) {
	cert, key := testCert(t)
	_, otherKey := testCert(t)
	for _, tc := range []struct {
		name, json string
		secure     map[string]string
		want       string
	}{
		{"empty", ``, nil, "no agents configured"},
		{"no agents", `{}`, nil, "no agents configured"},
		{"blank agents", `{"agents": ["", " "]}`, nil, "no agents configured"},
		{"both", `{"agents": ["a:1"], "agentsDnsName": "b:2"}`, nil, "both agents and agentsDnsName are set"},
		{"not json", `{"agents": [`, nil, "reading jsonData"},
		{"agents not a list", `{"agents": 7}`, nil, "jsonData.agents: must be a list"},
		{"missing port", `{"agents": ["a:1", "agent-2"]}`, nil, `agents[1] "agent-2": want host:port: missing port in address`},
		{"bad port", `{"agents": ["a:99999"]}`, nil, `agents[0] "a:99999": want host:port: port "99999" is not a number from 1 to 65535`},
		{"empty host", `{"agents": [":7700"]}`, nil, "the host is empty"},
		{"dns without port", `{"agentsDnsName": "podwire-agents.podwire.svc"}`, nil, `agentsDnsName "podwire-agents.podwire.svc": want host:port`},
		{"timeout not a number", `{"agents": ["a:1"], "timeoutSeconds": "soon"}`, nil, `jsonData.timeoutSeconds: "soon" is not a number`},
		{"timeout negative", `{"agents": ["a:1"], "timeoutSeconds": -3}`, nil, "timeoutSeconds: -3 is negative"},
		{"timeout too long", `{"agents": ["a:1"], "timeoutSeconds": 100000}`, nil, "timeoutSeconds: 100000 is more than 600"},
		{"tls not bool", `{"agents": ["a:1"], "tls": "yes"}`, nil, "jsonData.tls: want a bool, got a JSON string"},
		{"CA not PEM", `{"agents": ["a:1"], "tls": true}`, map[string]string{"tlsCACert": "hello"}, "tlsCACert: not PEM data"},
		{"CA broken", `{"agents": ["a:1"], "tls": true}`, map[string]string{"tlsCACert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "tlsCACert: certificate 1: x509:"},
		{"CA is a key", `{"agents": ["a:1"], "tls": true}`, map[string]string{"tlsCACert": key}, "tlsCACert: no CERTIFICATE block"},
		{"client cert missing", `{"agents": ["a:1"], "tlsAuth": true}`, map[string]string{"tlsClientKey": key}, "tlsAuth is on but tlsClientCert is empty"},
		{"client key missing", `{"agents": ["a:1"], "tlsAuth": true}`, map[string]string{"tlsClientCert": cert}, "tlsAuth is on but tlsClientKey is empty"},
		{"client key not PEM", `{"agents": ["a:1"], "tlsAuth": true}`, map[string]string{"tlsClientCert": cert, "tlsClientKey": "xyz"}, "tlsClientKey: not PEM data"},
		{"client key mismatch", `{"agents": ["a:1"], "tlsAuth": true}`, map[string]string{"tlsClientCert": cert, "tlsClientKey": otherKey}, "tlsClientCert/tlsClientKey: tls: private key does not match public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.json), tc.secure)
			if err == nil {
				t.Fatalf("no error, settings %+v", s)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseTooManyAgents(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"agents": [`)
	for i := 0; i <= MaxAgents; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"10.0.` + itoa(i/250) + `.` + itoa(i%250) + `:7700"`)
	}
	b.WriteString(`]}`)
	_, err := Parse([]byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "1001 addresses, at most 1000") {
		t.Errorf("error %v", err)
	}
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func TestParseGood(t *testing.T) {
	cert, key := testCert(t)
	for _, tc := range []struct {
		name, json string
		secure     map[string]string
		check      func(t *testing.T, s *Settings)
	}{
		{"static list, deduplicated, defaults", `{"agents": ["10.0.0.1:7700", " 10.0.0.2:7700 ", "10.0.0.1:7700", "[::1]:7700"]}`, nil, func(t *testing.T, s *Settings) {
			if strings.Join(s.Agents, ",") != "10.0.0.1:7700,10.0.0.2:7700,[::1]:7700" {
				t.Errorf("agents %v", s.Agents)
			}
			if s.Timeout != DefaultTimeout || s.DNSCache != DefaultDNSCache || s.TLS != nil || s.Token != "" {
				t.Errorf("defaults: %+v", s)
			}
		}},
		{"agents as text", `{"agents": "a:1, b:2\nc:3"}`, nil, func(t *testing.T, s *Settings) {
			if strings.Join(s.Agents, ",") != "a:1,b:2,c:3" {
				t.Errorf("agents %v", s.Agents)
			}
		}},
		{"dns name and numbers as strings", `{"agentsDnsName": "podwire-agents.podwire.svc:7700", "dnsCacheSeconds": "30", "timeoutSeconds": 2.5}`, map[string]string{"token": " tok "}, func(t *testing.T, s *Settings) {
			if s.DNSHost != "podwire-agents.podwire.svc" || s.DNSPort != "7700" || s.DNSCache != 30*time.Second || s.Timeout != 2500*time.Millisecond || s.Token != "tok" {
				t.Errorf("%+v", s)
			}
		}},
		{"empty numbers take defaults", `{"agents": ["a:1"], "dnsCacheSeconds": "", "timeoutSeconds": 0}`, nil, func(t *testing.T, s *Settings) {
			if s.Timeout != DefaultTimeout || s.DNSCache != DefaultDNSCache {
				t.Errorf("%+v", s)
			}
		}},
		{"tls with CA, client cert and server name", `{"agents": ["a:1"], "tls": true, "tlsAuth": true, "tlsServerName": "agent.podwire"}`,
			map[string]string{"tlsCACert": cert, "tlsClientCert": cert, "tlsClientKey": key}, func(t *testing.T, s *Settings) {
				if s.TLS == nil || s.TLS.RootCAs == nil || len(s.TLS.Certificates) != 1 || s.TLS.ServerName != "agent.podwire" || s.TLS.InsecureSkipVerify {
					t.Errorf("tls %+v", s.TLS)
				}
			}},
		{"skip verify implies tls", `{"agents": ["a:1"], "tlsSkipVerify": true}`, nil, func(t *testing.T, s *Settings) {
			if s.TLS == nil || !s.TLS.InsecureSkipVerify {
				t.Errorf("tls %+v", s.TLS)
			}
		}},
		{"unknown fields ignored", `{"agents": ["a:1"], "grafanaOwnThing": {"x": 1}}`, nil, func(t *testing.T, s *Settings) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.json), tc.secure)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

// FuzzParse: whatever Grafana hands over as jsonData, Parse answers with
// settings that hold together or an error naming a setting — never a panic,
// never agents that do not parse as host:port.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"agents": ["10.0.0.1:7700", "[::1]:7700"]}`,
		`{"agents": "a:1, b:2", "timeoutSeconds": "5"}`,
		`{"agentsDnsName": "podwire-agents.podwire.svc:7700", "dnsCacheSeconds": 30}`,
		`{"agents": ["x"], "tls": true, "tlsSkipVerify": true, "tlsServerName": "agent"}`,
		`{"agents": [1, null]}`, `[]`, `null`, `{"timeoutSeconds": -3}`,
	} {
		f.Add([]byte(s), "")
	}
	f.Add([]byte(`{"agents": ["a:1"], "tlsAuth": true}`), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Fuzz(func(t *testing.T, raw []byte, pem string) {
		s, err := Parse(raw, map[string]string{"tlsCACert": pem, "tlsClientCert": pem, "tlsClientKey": pem, "token": pem})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if len(s.Agents) == 0 && s.DNSName == "" {
			t.Fatalf("no agents and no DNS name from %q", raw)
		}
		if len(s.Agents) > MaxAgents {
			t.Fatalf("%d agents", len(s.Agents))
		}
		for _, a := range s.Agents {
			if _, _, err := net.SplitHostPort(a); err != nil {
				t.Fatalf("agent %q: %v", a, err)
			}
		}
		if s.Timeout <= 0 || s.Timeout > MaxTimeout {
			t.Fatalf("timeout %v", s.Timeout)
		}
	})
}
