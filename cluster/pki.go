package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
)

// certValidity is how long the generated certificates are valid.
const certValidity = 365 * 24 * time.Hour

// peerPKI gives every member an identity on the peer network: a client
// certificate whose Common Name is the member's name, presented on every peer
// connection the member opens (Raft streams and pipelines, forwarded lease
// renewals, version probes). The peer proxies require it, which is how a
// proxy knows which member sent the bytes it relays. The members in turn
// verify the proxies' server certificate. Everything is signed by one CA made
// for this cluster; the PEM files live in dir (etcd reads certificates from
// files).
type peerPKI struct {
	dir    string
	caFile string
	// server is the proxies' TLS config: their certificate, and the CA that
	// must have signed the client's.
	server *tls.Config
}

// newPeerPKI creates a CA, a server certificate for host and one client
// certificate per name, and writes them to dir.
func newPeerPKI(dir, host string, names []string) (*peerPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: peer certificates: %w", err)
	}
	ca, caKey, err := newCA("locksim peer CA")
	if err != nil {
		return nil, err
	}
	p := &peerPKI{dir: dir, caFile: filepath.Join(dir, "ca.crt")}
	if err := writePEM(p.caFile, "CERTIFICATE", ca.Raw); err != nil {
		return nil, err
	}
	srv, srvKey, err := newCert(ca, caKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "locksim peer proxy"},
		IPAddresses: []net.IP{net.ParseIP(host)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	p.server = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srv.Raw}, PrivateKey: srvKey, Leaf: srv}},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
	for _, name := range names {
		cert, key, err := newCert(ca, caKey, &x509.Certificate{
			Subject:     pkix.Name{CommonName: name},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			return nil, err
		}
		if err := writeKeyPair(p.certFile(name), p.keyFile(name), cert, key); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *peerPKI) certFile(name string) string { return filepath.Join(p.dir, name+".crt") }
func (p *peerPKI) keyFile(name string) string  { return filepath.Join(p.dir, name+".key") }

// tlsInfo is the peer TLS config of member name: its client certificate and
// the CA that signed the proxies' certificate.
func (p *peerPKI) tlsInfo(name string) transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:      p.certFile(name),
		KeyFile:       p.keyFile(name),
		TrustedCAFile: p.caFile,
	}
}

// newCert signs tmpl with parent's key (self-signed when parent is nil) and
// returns the certificate with its new private key.
// newCA makes a self-signed certificate authority named name.
func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	return newCert(nil, nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	})
}

func newCert(parent *x509.Certificate, parentKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificates: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificates: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(certValidity)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificates: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificates: %w", err)
	}
	return cert, key, nil
}

// writeKeyPair writes cert and its private key as PEM files.
func writeKeyPair(certFile, keyFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("cluster: certificates: %w", err)
	}
	if err := writePEM(certFile, "CERTIFICATE", cert.Raw); err != nil {
		return err
	}
	return writePEM(keyFile, "EC PRIVATE KEY", der)
}

func writePEM(path, typ string, der []byte) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("cluster: certificates: %w", err)
	}
	return nil
}
