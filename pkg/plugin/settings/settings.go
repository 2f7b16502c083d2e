// Package settings parses and checks a Podwire data source's settings
// (jsonData and secureJsonData, see docs/plugin.md).
package settings

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Limits and defaults.
const (
	// MaxAgents bounds the agents one data source talks to, listed or
	// resolved; a DNS name with more records uses the first MaxAgents
	// (sorted) and says so.
	MaxAgents = 1000
	// DefaultTimeout is one agent's deadline when the query has none.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout bounds timeoutSeconds.
	MaxTimeout = 10 * time.Minute
	// DefaultDNSCache is how long a resolved agentsDnsName is reused.
	DefaultDNSCache = 10 * time.Second
	// MaxDNSCache bounds dnsCacheSeconds.
	MaxDNSCache = time.Hour
)

// ErrNoAgents is the error when neither agents nor agentsDnsName is set.
var ErrNoAgents = errors.New("no agents configured: set agents (a list of host:port) or agentsDnsName (name:port of the agents' headless Service)")

// Settings are a data source's checked settings.
type Settings struct {
	// Agents are host:port addresses, deduplicated; empty when DNSName is
	// set.
	Agents []string
	// DNSName is "name:port" whose A/AAAA records are the agents; DNSHost
	// and DNSPort are its parts.
	DNSName, DNSHost, DNSPort string
	// DNSCache is how long a resolution is reused.
	DNSCache time.Duration
	// Timeout is one agent's deadline for one call.
	Timeout time.Duration
	// TLS is nil for plaintext.
	TLS *tls.Config
	// Token is the bearer token, "" for none.
	Token string
}

// jsonData is the wire form of the settings' jsonData.
type jsonData struct {
	Agents          stringList `json:"agents"`
	AgentsDNSName   string     `json:"agentsDnsName"`
	DNSCacheSeconds *number    `json:"dnsCacheSeconds"`
	TimeoutSeconds  *number    `json:"timeoutSeconds"`
	TLS             bool       `json:"tls"`
	TLSSkipVerify   bool       `json:"tlsSkipVerify"`
	TLSServerName   string     `json:"tlsServerName"`
	TLSAuth         bool       `json:"tlsAuth"`
}

// stringList is a JSON list of strings; a single string is accepted as a
// list separated by commas, spaces or new lines (as typed in a text box).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("must be a list of host:port strings")
	}
	*l = list
	return nil
}

// number is a JSON number, or a string holding one (as text inputs send).
type number float64

func (n *number) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		*n = number(f)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("must be a number")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		*n = -1 // unset
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	*n = number(f)
	return nil
}

// Parse checks jsonData and the decrypted secureJsonData. Its errors name
// the setting at fault.
func Parse(rawJSON []byte, secure map[string]string) (*Settings, error) {
	jd, err := readJSONData(rawJSON)
	if err != nil {
		return nil, err
	}
	s := &Settings{Timeout: DefaultTimeout, DNSCache: DefaultDNSCache, Token: strings.TrimSpace(secure["token"])}

	var agents []string
	for _, a := range jd.Agents {
		if a = strings.TrimSpace(a); a != "" {
			agents = append(agents, a)
		}
	}
	dnsName := strings.TrimSpace(jd.AgentsDNSName)
	switch {
	case len(agents) == 0 && dnsName == "":
		return nil, ErrNoAgents
	case len(agents) > 0 && dnsName != "":
		return nil, errors.New("both agents and agentsDnsName are set: use one of them")
	case dnsName != "":
		host, port, err := splitHostPort(dnsName)
		if err != nil {
			return nil, fmt.Errorf("agentsDnsName %q: %w", dnsName, err)
		}
		s.DNSName, s.DNSHost, s.DNSPort = dnsName, host, port
	default:
		seen := make(map[string]bool, len(agents))
		for i, a := range agents {
			host, port, err := splitHostPort(a)
			if err != nil {
				return nil, fmt.Errorf("agents[%d] %q: %w", i, a, err)
			}
			a = net.JoinHostPort(host, port)
			if !seen[a] {
				seen[a] = true
				s.Agents = append(s.Agents, a)
			}
		}
		if len(s.Agents) > MaxAgents {
			return nil, fmt.Errorf("agents: %d addresses, at most %d are supported; use agentsDnsName for large clusters", len(s.Agents), MaxAgents)
		}
	}

	if jd.TimeoutSeconds != nil && *jd.TimeoutSeconds >= 0 {
		d, err := seconds("timeoutSeconds", float64(*jd.TimeoutSeconds), MaxTimeout)
		if err != nil {
			return nil, err
		}
		if d > 0 {
			s.Timeout = d
		}
	} else if jd.TimeoutSeconds != nil && *jd.TimeoutSeconds != -1 {
		return nil, fmt.Errorf("timeoutSeconds: %v is negative", float64(*jd.TimeoutSeconds))
	}
	if jd.DNSCacheSeconds != nil && *jd.DNSCacheSeconds >= 0 {
		d, err := seconds("dnsCacheSeconds", float64(*jd.DNSCacheSeconds), MaxDNSCache)
		if err != nil {
			return nil, err
		}
		if d > 0 {
			s.DNSCache = d
		}
	} else if jd.DNSCacheSeconds != nil && *jd.DNSCacheSeconds != -1 {
		return nil, fmt.Errorf("dnsCacheSeconds: %v is negative", float64(*jd.DNSCacheSeconds))
	}

	cfg, err := tlsConfig(jd, secure)
	if err != nil {
		return nil, err
	}
	s.TLS = cfg
	return s, nil
}

func seconds(name string, v float64, max time.Duration) (time.Duration, error) {
	d := time.Duration(v * float64(time.Second))
	if d > max {
		return 0, fmt.Errorf("%s: %v is more than %v", name, v, max.Seconds())
	}
	return d, nil
}

// splitHostPort checks "host:port" with a non-empty host and a port in
// 1..65535.
func splitHostPort(a string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(a)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return "", "", fmt.Errorf("want host:port: %s", ae.Err)
		}
		return "", "", fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return "", "", errors.New("want host:port: the host is empty")
	}
	if strings.ContainsAny(host, "/ ") {
		return "", "", fmt.Errorf("want host:port: %q is not a host name or address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("want host:port: port %q is not a number from 1 to 65535", port)
	}
	return host, port, nil
}

// tlsConfig builds the client TLS configuration. TLS is on when tls is
// set, or implied by tlsSkipVerify, tlsAuth or a CA certificate.
func tlsConfig(jd jsonData, secure map[string]string) (*tls.Config, error) {
	ca := strings.TrimSpace(secure["tlsCACert"])
	if !jd.TLS && !jd.TLSSkipVerify && !jd.TLSAuth && ca == "" {
		return nil, nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: jd.TLSSkipVerify,
		ServerName:         strings.TrimSpace(jd.TLSServerName),
		NextProtos:         []string{"h2"},
	}
	if ca != "" {
		pool, err := certPool(ca)
		if err != nil {
			return nil, fmt.Errorf("tlsCACert: %w", err)
		}
		cfg.RootCAs = pool
	}
	if jd.TLSAuth {
		certPEM, keyPEM := strings.TrimSpace(secure["tlsClientCert"]), strings.TrimSpace(secure["tlsClientKey"])
		switch {
		case certPEM == "":
			return nil, errors.New("tlsAuth is on but tlsClientCert is empty")
		case keyPEM == "":
			return nil, errors.New("tlsAuth is on but tlsClientKey is empty")
		}
		if _, err := pemBlocks(certPEM, "tlsClientCert"); err != nil {
			return nil, err
		}
		if _, err := pemBlocks(keyPEM, "tlsClientKey"); err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
		if err != nil {
			return nil, fmt.Errorf("tlsClientCert/tlsClientKey: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// certPool parses every certificate in a PEM bundle.
func certPool(bundle string) (*x509.CertPool, error) {
	blocks, err := pemBlocks(bundle, "")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for i, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no CERTIFICATE block in the PEM data")
	}
	return pool, nil
}

// pemBlocks decodes every PEM block in s; text that is not PEM is an error
// naming the setting.
func pemBlocks(s, name string) ([]*pem.Block, error) {
	var out []*pem.Block
	rest := []byte(s)
	for {
		b, r := pem.Decode(rest)
		if b == nil {
			break
		}
		out = append(out, b)
		rest = r
	}
	prefix := ""
	if name != "" {
		prefix = name + ": "
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%snot PEM data (want -----BEGIN ...----- blocks)", prefix)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("%sunreadable text after PEM block %d", prefix, len(out))
	}
	return out, nil
}

// readJSONData decodes jsonData field by field, so an error names the
// field. Unknown fields (Grafana adds its own) are ignored.
func readJSONData(raw []byte) (jsonData, error) {
	var jd jsonData
	if len(strings.TrimSpace(string(raw))) == 0 {
		return jd, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return jd, fmt.Errorf("reading jsonData: %w", err)
	}
	fields := []struct {
		name string
		dst  any
	}{
		{"agents", &jd.Agents},
		{"agentsDnsName", &jd.AgentsDNSName},
		{"dnsCacheSeconds", &jd.DNSCacheSeconds},
		{"timeoutSeconds", &jd.TimeoutSeconds},
		{"tls", &jd.TLS},
		{"tlsSkipVerify", &jd.TLSSkipVerify},
		{"tlsServerName", &jd.TLSServerName},
		{"tlsAuth", &jd.TLSAuth},
	}
	for _, f := range fields {
		v, ok := m[f.name]
		if !ok || string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				err = fmt.Errorf("want a %s, got a JSON %s", te.Type, te.Value)
			}
			return jd, fmt.Errorf("jsonData.%s: %w", f.name, err)
		}
	}
	return jd, nil
}
