package configs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// TLS settings: a tls listener's certificate, key and client CA; a tls
// next hop's server name and CA; the handshake and idle timeouts. The
// loaders below are the ones the SIP edge uses at start and on reload, so
// a file the loader accepts is a file the gateway can serve.

func (t TLS) validate() error {
	if t.HandshakeTimeout <= 0 {
		return errf("sip.tls.handshake_timeout", "must be > 0, got %s", t.HandshakeTimeout)
	}
	if t.IdleTimeout <= 0 {
		return errf("sip.tls.idle_timeout", "must be > 0, got %s", t.IdleTimeout)
	}
	return nil
}

// validateTLS checks the TLS fields of the listen entry at path: required
// and loadable for transport tls, absent otherwise.
func (l Listen) validateTLS(path string) error {
	if l.Transport != "tls" {
		for _, f := range []struct{ name, v string }{{"cert", l.Cert}, {"key", l.Key}, {"client_ca", l.ClientCA}} {
			if f.v != "" {
				return errf(path+"."+f.name, "only for transport tls (this listener is %s)", l.Transport)
			}
		}
		return nil
	}
	if l.Cert == "" {
		return errf(path+".cert", "required for a tls listener (PEM file of the certificate chain)")
	}
	if l.Key == "" {
		return errf(path+".key", "required for a tls listener (PEM file of the certificate's private key)")
	}
	if _, err := LoadKeyPair(l.Cert, l.Key); err != nil {
		var fe *fileError
		if errors.As(err, &fe) {
			return errf(path+"."+fe.field, "%s", fe.msg)
		}
		return errf(path+".cert", "%s", err.Error())
	}
	if l.ClientCA != "" {
		if _, err := LoadCertPool(l.ClientCA); err != nil {
			return errf(path+".client_ca", "%s", err.Error())
		}
	}
	return nil
}

// validateTLS checks the TLS fields of the next hop at path (e.g.
// "carriers[0]", "tenants[2].pbx").
func (h Hop) validateTLS(path string) error {
	if h.Transport != "tls" {
		if h.ServerName != "" {
			return errf(path+".server_name", "only for transport tls (this hop is %s)", h.Transport)
		}
		if h.CA != "" {
			return errf(path+".ca", "only for transport tls (this hop is %s)", h.Transport)
		}
		return nil
	}
	if h.ServerName != "" {
		if msg := checkAdvertise(h.ServerName); msg != "" {
			return errf(path+".server_name", "%s (the name the hop's certificate is issued for)", msg)
		}
	}
	if h.CA != "" {
		if _, err := LoadCertPool(h.CA); err != nil {
			return errf(path+".ca", "%s", err.Error())
		}
	}
	return nil
}

// fileError is a key pair error about one of its two files.
type fileError struct {
	field string // "cert" or "key"
	msg   string
}

func (e *fileError) Error() string { return e.field + ": " + e.msg }

// LoadKeyPair reads a PEM certificate chain (leaf first) and its private
// key, checks that they match and returns them with Leaf parsed. Its
// errors say which file is at fault.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, &fileError{"cert", err.Error()}
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, &fileError{"key", err.Error()}
	}
	if n, err := countCerts(certPEM); err != nil {
		return tls.Certificate{}, &fileError{"cert", fmt.Sprintf("%s: %v", certFile, err)}
	} else if n == 0 {
		return tls.Certificate{}, &fileError{"cert", fmt.Sprintf("%s: no PEM CERTIFICATE block", certFile)}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, &fileError{"key", fmt.Sprintf("%s: %v", keyFile, err)}
	}
	return pair, nil
}

// LoadCertPool reads a PEM file of CA certificates into a pool. A file
// without any certificate, or with one that does not parse, is an error.
func LoadCertPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %v", file, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", file)
	}
	return pool, nil
}

// countCerts counts the CERTIFICATE blocks of a PEM file, each parsed.
func countCerts(data []byte) (int, error) {
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return n, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return n, fmt.Errorf("certificate %d: %v", n+1, err)
		}
		n++
	}
}
